"""Every model of every domain, imported so the metadata is complete (for Alembic)."""

from bhp_ctms.accounts.models import LoginAttempt, Membership, User
from bhp_ctms.audit.models import AuditCheckpoint, AuditEvent, AuditReview, AuditVerification
from bhp_ctms.crf.models import (
    FormEntry,
    FormVersion,
    ItemValue,
    Query,
    QueryMessage,
    Signature,
    SourceVerification,
    SourceVerificationPlan,
)
from bhp_ctms.db import ModelBase
from bhp_ctms.exports.models import DatasetExport, DatasetSnapshot
from bhp_ctms.locks.models import Lock
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.participants.models import (
    ConsentRecord,
    EligibilityAssessment,
    Participant,
    ParticipantIdentifiers,
    ParticipantSequence,
    Visit,
)
from bhp_ctms.randomisation.models import (
    Allocation,
    AllocationList,
    ListEntry,
    StratumCounter,
    Unblinding,
)
from bhp_ctms.sessions import UserSession
from bhp_ctms.sites.models import Site
from bhp_ctms.storage.models import StoredFile, StoredFileChunk
from bhp_ctms.studies.models import ProtocolVersion, Study

metadata = ModelBase.metadata

__all__ = [
    "Allocation",
    "AllocationList",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditReview",
    "AuditVerification",
    "ConsentRecord",
    "DatasetExport",
    "DatasetSnapshot",
    "EligibilityAssessment",
    "FormEntry",
    "FormVersion",
    "ItemValue",
    "ListEntry",
    "Lock",
    "LoginAttempt",
    "Membership",
    "OutboundEmail",
    "Participant",
    "ParticipantIdentifiers",
    "ParticipantSequence",
    "ProtocolVersion",
    "Query",
    "QueryMessage",
    "Signature",
    "Site",
    "SourceVerification",
    "SourceVerificationPlan",
    "StoredFile",
    "StoredFileChunk",
    "StratumCounter",
    "Study",
    "Unblinding",
    "User",
    "UserSession",
    "Visit",
    "metadata",
]
