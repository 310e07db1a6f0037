"""Base model for Conductor's JSON shapes: camelCase field names as on the wire,
unknown properties ignored (as Conductor's Jackson setup ignores them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """Conductor omits null bean properties but keeps nulls inside maps."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)
