"""Shared schema pieces: pagination, probabilities, ids."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contract import PrivacyMode

T = TypeVar("T")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Limit = Annotated[int, Field(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Field(ge=0, le=10_000_000, description="items to skip")]

__all__ = ["Code", "Limit", "Name", "Offset", "Page", "PrivacyMode", "ProbsOut"]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int = Field(description="items in the whole list")
    limit: int
    offset: int


class ProbsOut(BaseModel):
    """A distribution over the six labels (may be absent when hidden or no face was seen)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "joy": 0.1,
                "focus": 0.5,
                "thinking": 0.2,
                "boredom": 0.1,
                "confusion": 0.05,
                "drowsy": 0.05,
            }
        }
    )

    joy: float
    focus: float
    thinking: float
    boredom: float
    confusion: float
    drowsy: float
