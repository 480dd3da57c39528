"""The base of the API's answer models, and the error model every failure answers with."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Answers are read from the operations' dataclasses by attribute; requests refuse unknown fields."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")


class Problem(ApiModel):
    """An error: what went wrong in one line, and how to fix it."""

    title: str = Field(description="The kind of error, e.g. `Not found`.")
    detail: str = Field(description="The problem and the fix, in one line.")
    status: int = Field(description="The HTTP status, repeated.")


__all__ = ["ApiModel", "Problem"]
