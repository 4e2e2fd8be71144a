"""Contract fuzzing: Schemathesis against a real Strata server, driven by the OpenAPI document it serves.

    python tests/fuzz/contract_fuzz.py                                   # a short run (seed 1)
    python tests/fuzz/contract_fuzz.py --examples 300 --min-cases 10000  # make fuzz

It starts ``strata serve tests/fuzz/app.yaml`` (``strata.testing.ServerProcess``: a chat model, an
embedding model, an echo model behind a two-version route, pipelines), then runs ``schemathesis run``
on ``GET /openapi.json`` with ``tests/fuzz/schemathesis.toml``, as the bootstrap admin key. Every
operation of the document is fuzzed, in every phase (examples, coverage, fuzzing, and stateful
sequences along the document's links: create key -> get -> revoke, upload file -> batch -> get ->
cancel, submit job -> get -> events -> result -> cancel), with every check Schemathesis has: server
errors, response bodies, status codes, content types and headers against the document, schema-valid
requests refused, schema-invalid requests accepted, the Allow header, unauthenticated access.

Bodies the document can only call strings are checked as such: ``GET /docs`` (HTML),
``GET /metrics`` (Prometheus text), file and artifact contents. Server-sent events (streamed
completions, ``GET /v1/jobs/{job_id}/events``) are checked event by event against the document.

The run passes when Schemathesis reports no failure and no error, the server logged no error, and at
least ``--min-cases`` test cases were generated. The seed is fixed, so a run repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from strata.testing import ServerProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = HERE / "app.yaml"
CONFIG = HERE / "schemathesis.toml"


@dataclass
class FuzzResult:
    cases: int  # test cases Schemathesis generated and sent
    exit_code: int
    failures: list[str]  # "title (count)" per kind of failure
    errors: list[str]  # errors of the run itself (network errors, timeouts, schema problems)
    server_errors: list[str]  # ERROR lines of the server's log
    output: str  # Schemathesis' report: every failure with a curl line to reproduce it
    report: dict[str, object] = field(repr=False, default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors and not self.server_errors

    def summary(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        operations = self.report.get("operations", {})
        tested = f"{operations.get('tested')}/{operations.get('total')}" if isinstance(operations, dict) else "?"
        lines = [f"contract fuzz {verdict}: {self.cases} cases over {tested} operations, exit code {self.exit_code}"]
        lines += [f"  failure: {failure}" for failure in self.failures]
        lines += [f"  error: {error}" for error in self.errors]
        lines += [f"  server log: {line}" for line in self.server_errors]
        return "\n".join(lines)


def fuzz(*, examples: int, seed: int, request_timeout_s: float = 30.0, workdir: Path | None = None) -> FuzzResult:
    """One run against a fresh server: ``examples`` per operation and phase, from ``seed``."""
    with tempfile.TemporaryDirectory(prefix="strata-fuzz-") as scratch:
        reports = workdir or Path(scratch)
        with ServerProcess(APP) as server:
            report_path = reports / "schemathesis.json"
            command = [
                sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
                f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {server.api_key}",
                "--seed", str(seed), "--max-examples", str(examples),
                "--workers", "1",  # one case at a time: the same seed gives the same run
                "--continue-on-failure", "--request-timeout", str(request_timeout_s),
                "--report", "json", "--report-json-path", str(report_path),
                "--no-color", "--output-truncate", "false",
            ]  # fmt: skip
            env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(reports / "hypothesis")}
            # From the repository root: the config names its hooks file relative to it.
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            logs = server.logs()
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    test_cases = report.get("test_cases", {})
    return FuzzResult(
        cases=int(test_cases.get("generated", 0)) if isinstance(test_cases, dict) else 0,
        exit_code=done.returncode,
        failures=[f"{f['title']} ({f['count']})" for f in report.get("failures", [])],
        errors=[f"{e['title']} ({e['count']})" for e in report.get("errors", [])],
        server_errors=[line for line in logs.splitlines() if " ERROR " in line],
        output=done.stdout + done.stderr,
        report=report,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-cases", type=int, default=0, help="fail unless at least this many cases ran")
    arguments = parser.parse_args()
    result = fuzz(examples=arguments.examples, seed=arguments.seed)
    if not result.ok:
        print(result.output)
    print(result.summary())
    if result.cases < arguments.min_cases:
        print(f"only {result.cases} test cases ran; at least {arguments.min_cases} were asked for")
        return 1
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
