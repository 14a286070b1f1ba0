"""The six learning emotions, in the one fixed order used by the model, the wire and the store."""

from typing import Final, Literal

Label = Literal["joy", "focus", "thinking", "boredom", "confusion", "drowsy"]

LABELS: Final[tuple[Label, ...]] = ("joy", "focus", "thinking", "boredom", "confusion", "drowsy")
