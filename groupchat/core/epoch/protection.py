"""Application-message glue: protect our messages, open the room's (RFC 9420 §6.3, §9).

The framing and the crypto are :mod:`groupchat.core.message_protection`; this module picks the
epoch's keys, recognises our own echoes, authenticates the sender against the roster of the epoch
the message was sent in, and refuses late messages of removed members.
"""

from __future__ import annotations

from ..errors import (
    HoldMessagesError,
    InvalidValueError,
    RemovedSenderError,
    UnknownMemberError,
    UsageError,
    WrongGroupError,
)
from ..events import (
    Event,
    Member,
    MessageEchoed,
    MessageReceived,
)
from ..message_protection import (
    MAX_APPLICATION_DATA,
    ApplicationWire,
    ContentType,
    PrivateMessage,
    open_application,
    seal_application,
    verify_application,
)
from .admission import Admission
from .machine import Input
from .state import _MAX_UNHASHED


class Protection(Admission):
    """Application messages in and out of the current (or retained previous) epoch."""

    @property
    def holding_messages(self) -> bool:
        """True while a change that removes members is in flight (our commit awaiting its echo) or
        agreed (a ring's run): a message sent now is ordered after it, yet the removed still hold
        this epoch's keys, so :meth:`encrypt` refuses until the next epoch is entered."""
        ring, pending = self._ring, self._pending
        return (ring is not None and bool(ring.removed)) or (pending is not None and bool(pending.removed))

    def encrypt(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """Sign and encrypt an application message for the current epoch."""
        self._require(Input.ENCRYPT)
        self._expire_previous_epoch()
        if self.holding_messages:
            removed = self._ring.removed if self._ring is not None else ()
            if not removed and self._pending is not None:
                removed = self._pending.removed
            names = ", ".join(repr(m.display_name) for m in removed)
            raise HoldMessagesError(
                f"cannot send at epoch {self.epoch}: the change that removes {names} is being agreed, "
                f"and they could read it; send once epoch {self.epoch + 1} is entered"
            )
        if len(plaintext) > MAX_APPLICATION_DATA:
            # Receivers refuse longer application data (read_application_data): never send it.
            raise UsageError(f"message of {len(plaintext)} bytes is longer than {MAX_APPLICATION_DATA}")
        keys, ctx, config = self._keys, self._ctx, self.config
        data = seal_application(
            self.suite,
            self._identity.signing_key,
            self._ctx_bytes,
            group_id=ctx.group_id,
            epoch=ctx.epoch,
            sender=self._scheme.my_leaf,
            authenticated_data=authenticated_data,
            data=plaintext,
            secret_tree=keys.secret_tree,
            sender_data_secret=keys.sender_data_mac,
            padding_block=config.padding_block,
            rand=config.rand,
        )
        self._note_sent_message(data)
        return data

    def _receive_private(self, data: bytes) -> Event:
        # Our own messages come back from the relay; our key for them is already deleted, so
        # we recognise the exact bytes we sent instead of decrypting them.
        if len(data) <= _MAX_UNHASHED:  # a short one of ours awaits its echo by its bytes
            sent_in = self._unechoed.pop(data if type(data) is bytes else bytes(data), None)
            if sent_in is not None:
                return MessageEchoed(sent_in, self.suite.hash(data))
        if self._unechoed_hashed:  # with none of ours awaiting its echo by digest, nothing to look up
            digest = self.suite.hash(data)
            epoch = self._pop_unechoed_digest(digest)
            if epoch is not None:
                return MessageEchoed(epoch, digest)
        wire = ApplicationWire.read(data)
        if wire is None:  # not the common shape: decoded in full, which names what is wrong
            msg = PrivateMessage.decode(data)
            if msg.group_id != self.group_id:
                raise WrongGroupError("message belongs to another group")
            if msg.content_type != ContentType.APPLICATION:
                raise InvalidValueError("handshake messages must be sent as public commits")
            wire = ApplicationWire.of(msg)
        elif wire.group_id != self.group_id:
            raise WrongGroupError("message belongs to another group")
        keys = self._keys_for_epoch(wire.epoch)
        sender, plaintext, body, signature, lookup = open_application(
            self.suite, wire, sender_data_secret=keys.sender_data_mac, secret_tree=keys.secret_tree
        )
        gone = keys.removed.get(sender)
        request = gone or (
            keys.overrides[sender] if sender in keys.overrides else self._scheme.member(sender)
        )
        if request is None:
            raise UnknownMemberError(f"message claims to come from leaf {sender}, which holds no member")
        self._verify_member(sender, request)
        key, context = request.identity_key, keys.group_context
        verify_application(self.suite, key, context, wire, sender, body, signature)
        if gone is not None:
            # Checked after the signature, so the error names the real sender. The relay ordered
            # this after the commit that removed them: it must not read as normal chat.
            raise RemovedSenderError(
                f"{gone.display_name!r} ({gone.fingerprint}) sent this message in epoch {wire.epoch} "
                f"after their removal (the commit that started epoch {wire.epoch + 1} removed them); "
                "it is refused",
                sender,
                gone.display_name,
            )
        keys.secret_tree.commit(lookup)
        return MessageReceived(
            Member(sender, request.display_name, request.identity_key),
            plaintext,
            wire.epoch,
            lookup.generation,
            wire.authenticated_data,
        )
