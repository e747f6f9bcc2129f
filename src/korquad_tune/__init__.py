"""korquad-tune: SQuAD-format Q/A knowledge -> a small fine-tuned LLM, measured honestly.

Stages (one module each): data -> augment -> train -> evaluate -> report, plus generate (ask).
"""

__version__ = "0.1.0"


class KorquadTuneError(Exception):
    """An error the user can fix: the message names the file/record and what to do."""
