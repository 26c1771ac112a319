"""The whole verification of the audit trail: chains, checkpoints and replay.

Used by ``ctms audit verify``, by the monitors' verification page and by its
Celery task, so all three report the same problems in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from bhp_ctms.audit.chain import ChainProblem, chains, count_events, verify_chain
from bhp_ctms.audit.checkpoints import CheckpointProblem, verify_checkpoints
from bhp_ctms.audit.replay import ReplayProblem, compare


@dataclass(frozen=True)
class ChainResult:
    chain: str
    events: int
    problem: ChainProblem | CheckpointProblem | None

    def __str__(self) -> str:
        if self.problem is None:
            return f"chain {self.chain}: {self.events} events, intact"
        return f"BROKEN {self.problem}"


@dataclass
class VerificationReport:
    chains: list[ChainResult] = field(default_factory=list)
    replay_problems: list[ReplayProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events_checked(self) -> int:
        return sum(result.events for result in self.chains)

    @property
    def problems(self) -> list[str]:
        """One line per problem: the first of each broken chain, then each replay difference."""
        lines = [str(result) for result in self.chains if result.problem is not None]
        lines.extend(f"DIFFERS {problem}" for problem in self.replay_problems)
        return lines

    def lines(self) -> list[str]:
        """Everything, as ``ctms audit verify`` prints it."""
        lines = [str(result) for result in self.chains]
        lines.extend(f"DIFFERS {problem}" for problem in self.replay_problems)
        if self.ok:
            lines.append("replay: every audited row matches the audit trail")
        return lines


def verify_audit_trail(
    db: Session, secret_key: str, study_id: int | None = None, *, all_chains: bool = True
) -> VerificationReport:
    """Check every chain (or one study's) event by event, its signed checkpoints, and replay.

    A chain's own problems are reported first: a chain broken at an event explains
    the checkpoints after it. Replay runs even when a chain is broken, so a direct
    edit of a value is reported beside a tampered event.
    """
    report = VerificationReport()
    for chain in chains(db, study_id, all_chains=all_chains):
        problem: ChainProblem | CheckpointProblem | None = verify_chain(db, chain)
        if problem is None:
            problem = verify_checkpoints(db, secret_key, chain)
        report.chains.append(ChainResult(chain, count_events(db, chain), problem))
    report.replay_problems = compare(db, study_id, all_chains=all_chains)
    return report
