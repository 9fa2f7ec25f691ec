"""The project's domain error tree.

    InbeeldError
    ├── ContractError            a message or payload breaks the contract
    │   ├── EnvelopeInvalid      the CloudEvents envelope is malformed        (envelope_invalid)
    │   ├── UnknownType          the event type is not one we know            (unknown_type)
    │   ├── SchemaInvalid        the payload does not match its schema        (schema_invalid)
    │   ├── TooLarge             the message exceeds the size limit           (too_large)
    │   ├── TooDeep              JSON/TOML nested beyond schemas.nesting.MAX_DEPTH (too_deep)
    │   └── PersonalDataInEnvelope  a BSN in an envelope attribute            (personal_data_in_envelope)
    ├── RoutingRefused           the hub refuses to route a valid event
    │   ├── SourceMismatch       `source` does not belong to the broker user  (source_mismatch)
    │   ├── UnknownRecipient     a recipient or group does not exist/active   (unknown_recipient)
    │   ├── NotAuthorised        the sender may not send this to them         (not_authorised)
    │   ├── InvalidTransition    a workflow step that its state forbids       (invalid_transition)
    │   ├── BadSignature         signature missing, wrong or key unknown      (bad_signature)
    │   └── RateLimited          the sender publishes faster than allowed     (rate_limited)
    ├── CryptoError              sealing/opening failed (never says why to a peer beyond this)
    │   └── CryptoInvalid        `data` is not a well-formed JOSE object of the wire format:
    │                            bad structure or encoding, unsupported version or algorithm
    │                            (crypto_invalid; a signature that does not verify is
    │                            `bad_signature`)
    ├── NotFound                 a record does not exist (or is not yours)
    ├── Gone                     what was asked for existed but is no longer kept (gone)
    └── Conflict                 the request contradicts what the hub holds (a duplicate)
        └── KeyReplacementRefused  new keys for a tenant without a valid rotation proof
                                 (key_replacement_refused)

Subclasses defined where they are raised (a test keeps this list complete):

    ContractError   <- hub.keys.KeyInvalid, hub.operator_logins.BadLogin,
                       connectors.accounts.BadAccount
    RoutingRefused  <- hub.keys.RecipientKeyMissing
    CryptoError     <- schemas.key_proof.ProofInvalid, connectors.keystore.KeystoreError
    NotFound        <- hub.registry.UnknownTenants, connectors.templates.TemplateUnavailable,
                       connectors.outbox.OutboxItemUnknown, connectors.offers.OfferUnknown
    Gone            <- hub.retention.BeforeRetention
    Conflict        <- hub.registry.AlreadyExists, hub.auth.LastOperatorToken,
                       hub.auth.AlreadyRevoked, hub.operator_logins.LoginExists,
                       hub.replay.DiscardRefused, connectors.outbox.OutboxItemNotParked,
                       connectors.accounts.AccountExists, hub.provisioning.TenantBusy,
                       hub.registry.TenantRemoved
    InbeeldError    <- hub.errors.ServiceUnavailable (BrokerUnavailable, ManagementUnavailable,
                       DatabaseUnavailable), hub.errors.Transient, hub.registry.RegistryError,
                       hub.broker.management.ManagementError, hub.provisioning.ProvisioningError,
                       hub.broker.connection.BrokerAccessRefused, hub.replay.ReplayRefused,
                       hub.inboxes.InboxMoveError, hub.router.RecipientBusy,
                       connectors.client.ConnectorError (InboxUnavailable),
                       connectors.config.ConfigError, connectors.inbox_name.InboxNameUnknown,
                       connectors.hub_api.HubApiError,
                       connectors.letters.errors.LetterError (and its tree there),
                       connectors.templates.TemplateRefused, connectors.transfers.TransferError,
                       connectors.sinks.SinkError, connectors.runtime.FlowRefused,
                       connectors.store.StoreMigrationError, schemas.audit_chain.AuditChainBroken,
                       schemas.tls.TlsError, connectors.sink_files.SinkFileError

Each refusal carries a stable `reason` code (sent in `hub.rejected`) and a human message that
never contains personal data. The HTTP and AMQP edges map this tree to status codes and to
ack/reject decisions in exactly one place each (`hub.api.errors`, `hub.router`).
"""

from __future__ import annotations


class InbeeldError(Exception):
    reason: str = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ContractError(InbeeldError):
    reason = "contract_error"


class EnvelopeInvalid(ContractError):
    reason = "envelope_invalid"


class UnknownType(ContractError):
    reason = "unknown_type"


class SchemaInvalid(ContractError):
    reason = "schema_invalid"


class TooLarge(ContractError):
    reason = "too_large"


class TooDeep(ContractError):
    reason = "too_deep"


class PersonalDataInEnvelope(ContractError):
    """An envelope attribute holds what looks like a BSN. Envelope attributes are stored and
    logged by the hub in the clear, so personal data belongs in the sealed `data` only."""

    reason = "personal_data_in_envelope"


class RoutingRefused(InbeeldError):
    reason = "refused"


class SourceMismatch(RoutingRefused):
    reason = "source_mismatch"


class UnknownRecipient(RoutingRefused):
    reason = "unknown_recipient"


class NotAuthorised(RoutingRefused):
    reason = "not_authorised"


class InvalidTransition(RoutingRefused):
    reason = "invalid_transition"


class BadSignature(RoutingRefused):
    reason = "bad_signature"


class RateLimited(RoutingRefused):
    reason = "rate_limited"


class CryptoError(InbeeldError):
    reason = "crypto_error"


class CryptoInvalid(CryptoError):
    reason = "crypto_invalid"


class NotFound(InbeeldError):
    reason = "not_found"


class Gone(InbeeldError):
    reason = "gone"


class Conflict(InbeeldError):
    reason = "conflict"


class KeyReplacementRefused(Conflict):
    """The hub keeps a tenant's published keys: a new key set came without a valid rotation
    proof (another keystore than the one registered). The hub raises it; a connector gets it
    back from the API as the same class (`connectors.hub_api`)."""

    reason = "key_replacement_refused"
