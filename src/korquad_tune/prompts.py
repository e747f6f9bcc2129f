"""Prompt templates: the one place that says how a question becomes model input.

The default is the original experiment's Alpaca prompt, exactly. Training text is the prompt followed by the
answer (plus the tokenizer's EOS at training time); the inference prompt is the same text up to and including
`### Response: `. The template's name is saved next to every adapter so inference uses what training used.
"""

from __future__ import annotations

from dataclasses import dataclass

from korquad_tune import KorquadTuneError

ALPACA_HEADER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    prompt_format: str  # everything before the answer; contains {question}
    uses_chat_template: bool = False

    def prompt(self, question: str, tokenizer=None) -> str:
        """The inference prompt: the model continues it with the answer."""
        if self.uses_chat_template:
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise KorquadTuneError(f"prompt template {self.name!r} needs a tokenizer with a chat template")
            return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                 add_generation_prompt=True)
        return self.prompt_format.format(question=question)

    def text(self, question: str, answer: str, tokenizer=None) -> str:
        """The full training text (the `text` column), without EOS."""
        return self.prompt(question, tokenizer) + answer


TEMPLATES: dict[str, PromptTemplate] = {
    "alpaca": PromptTemplate("alpaca", ALPACA_HEADER + " ### Instruction: {question} ### Response: "),
    "short": PromptTemplate("short", "질문: {question}\n답: "),
    "chat": PromptTemplate("chat", "", uses_chat_template=True),
}
DEFAULT_TEMPLATE = "alpaca"

# Open-book prompt (the `reader` adapter, `open-book` and `rag` systems): Alpaca's own Input section.
READER_FORMAT = ALPACA_HEADER + " ### Input: {context} ### Instruction: {question} ### Response: "


READER_CONTEXT_CHARS = 1500  # longer contexts are cut (a KorQuAD paragraph averages ~540 characters)


def reader_prompt(context: str, question: str) -> str:
    return READER_FORMAT.format(context=" ".join(context.split())[:READER_CONTEXT_CHARS], question=question)


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KorquadTuneError(f"unknown prompt template {name!r}; choose one of {sorted(TEMPLATES)}") from None
