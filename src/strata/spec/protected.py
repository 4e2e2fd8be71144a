"""Protected data in the app spec: which tenants' prompts and outputs are kept, and for how long.

A tenant's policy says what the gateway keeps of each of its inference requests, beside the audit
trail's sizes and hashes: ``none`` (nothing), ``metadata`` (a row with who, when, which model,
status, tokens and hashes) or ``full`` (that row plus the prompt and the output, encrypted with
AES-GCM under the active data key). Rows older than ``retention_days`` are purged on a schedule.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StoreLevel = Literal["none", "metadata", "full"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataPolicySpec(_Spec):
    tenant: str = Field(description="The tenant this policy is for; '*' for every tenant without its own.")
    store_prompts: StoreLevel = Field(
        default="none",
        description="none: keep nothing; metadata: who, when, model, status, tokens and hashes; full: also the "
        "prompt and the output, encrypted at rest (needs a data key).",
    )
    retention_days: float | None = Field(
        default=None, gt=0, le=36_500, description="Kept rows older than this are purged; None: kept until deleted."
    )


class ProtectedDataSpec(_Spec):
    policies: list[DataPolicySpec] = Field(
        default_factory=list, description="One policy per tenant (and '*' for the rest); none: nothing is kept."
    )
    keys_env: str = Field(
        default="STRATA_DATA_KEYS",
        description="Environment variable with the data keys, 'id:base64key,...' (16, 24 or 32 bytes each); the "
        "first is the active key, the others only decrypt.",
    )
    keys_file_env: str = Field(
        default="STRATA_DATA_KEYS_FILE",
        description="Environment variable naming a file with the keys instead, one 'id:base64key' per line.",
    )
    purge_interval_s: float = Field(
        default=3600.0, ge=1, le=7 * 86_400, description="How often each gateway purges rows past their retention."
    )
    max_content_bytes: int = Field(
        default=65_536, ge=1024, le=16 * 1024 * 1024, description="A kept prompt or output is cut at this size."
    )
    max_buffer_rows: int = Field(
        default=10_000, ge=100, description="Rows waiting to be written; past this, new ones are dropped and counted."
    )

    @model_validator(mode="after")
    def _one_policy_per_tenant(self) -> ProtectedDataSpec:
        tenants = [p.tenant for p in self.policies]
        duplicates = sorted({t for i, t in enumerate(tenants) if t in tenants[:i]})
        if duplicates:
            raise ValueError(f"policies: more than one policy for tenant {', '.join(map(repr, duplicates))}")
        return self

    @property
    def encrypts(self) -> bool:
        """Whether any policy keeps content (and so a data key is needed)."""
        return any(p.store_prompts == "full" for p in self.policies)
