"""The public API, pinned: each module's ``__all__`` (as trio's and websockets' test_exports do).

A change to a public name list must be deliberate: update the table here in the same commit.
Every module of ``groupchat`` and ``server`` that declares ``__all__`` must appear below, and every
name it exports must exist.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import groupchat
import server

PUBLIC: dict[str, list[str]] = {
    'groupchat.cli': [
        'COMMANDS', 'Command', 'CommandModule', 'build_parser', 'error_line', 'main', 'port_number',
        'positive_int',
    ],
    'groupchat.client.app_content': [
        'AppContent', 'ContentKind', 'MSG_ID_LEN', 'UnknownContentKindError',
    ],
    'groupchat.client.backoff': [
        'Backoff', 'JITTER',
    ],
    'groupchat.client.bot': [
        'SCRIPT_HELP', 'ScriptError', 'Step', 'add_arguments', 'main', 'parse_script', 'run',
    ],
    'groupchat.client.config': [
        'ClientConfig', 'ConfigFileError', 'ENV_CONFIG', 'ENV_DATA_DIR', 'ENV_LOG_DIR',
        'add_config_arguments', 'default_config_path', 'load_config',
    ],
    'groupchat.client.coordinator': [
        'AddDuty', 'CommitPlan', 'RemoveDuty', 'is_my_turn', 'next_turns', 'plan_commit', 'turn_at',
    ],
    'groupchat.client.core_worker': [
        'CoreWorker', 'INLINE_MAX_BYTES', 'Timed', 'TreeSnapshot',
    ],
    'groupchat.client.history_export': [
        'Rooms', 'add_arguments', 'format_json', 'format_text', 'run',
    ],
    'groupchat.client.identity_store': [
        'IdentityFileError', 'check_private_mode', 'load_or_create_identity', 'write_private_file',
    ],
    'groupchat.client.logging_setup': [
        'SanitisingFormatter', 'configure_logging',
    ],
    'groupchat.client.names': [
        'AmbiguousMember', 'KnownNames', 'Labeler', 'MIN_SUFFIX', 'NameIndex', 'Named', 'NoSuchMember',
        'SEPARATOR', 'compact_fingerprint', 'confusable', 'label_members', 'resolve', 'skeletons',
    ],
    'groupchat.client.notices': [
        'ChatLine', 'ConnectionState', 'MessageConfirmed', 'Notice', 'Placeholder', 'RosterChanged',
        'RosterEntry', 'StatusChanged', 'TimelineEvent', 'TimelineKind', 'TreeNode', 'TreeView',
        'TrustState', 'UnreadableReason',
    ],
    'groupchat.client.outbound_queue': [
        'OutboundQueue', 'Outgoing',
    ],
    'groupchat.client.room_payload': [
        'CREATION_NONCE_LEN', 'JoinAsk', 'PayloadKind', 'RoomPayload', 'SYNC_NONCE_LEN',
        'UnknownPayloadKindError',
    ],
    'groupchat.client.session': [
        'ChatSession', 'SessionSettings', 'group_id_for_room', 'member_id',
    ],
    'groupchat.client.session.actions': [
        'AbortConnection', 'Action', 'CallCore', 'CloseConnection', 'Effect', 'Notify', 'Queued', 'Reply',
        'ResetBackoff', 'SendFrame', 'Step', 'Stop', 'resume',
    ],
    'groupchat.client.session.admitting': [
        'Admitting', 'InviteView', 'MAX_APPROVALS', 'MAX_INVITE_USES', 'PROMPTS_PER_MINUTE',
    ],
    'groupchat.client.session.asyncio_session': [
        'ChatSession',
    ],
    'groupchat.client.session.beacon_steps': [
        'BeaconSteps',
    ],
    'groupchat.client.session.beacons': [
        'ASK_GAP', 'Beacon', 'BeaconBook', 'DIGEST_LEN', 'KEEPALIVE', 'MAX_ENTRIES', 'SPEAKERS', 'Tally',
        'authenticator_digest', 'is_speaker', 'speakers',
    ],
    'groupchat.client.session.behind': [
        'Behind', 'PROBE_WAIT', 'Split', 'note_hint', 'probe_due', 'should_reenter',
    ],
    'groupchat.client.session.bounds': [
        'MAX_BUFFERED', 'MAX_BUFFERED_BYTES', 'MAX_PENDING_ACKS', 'MAX_PENDING_JOINERS', 'MAX_PRESENT',
        'RoomPresence', 'sane_max_payload',
    ],
    'groupchat.client.session.core_calls': [
        'CheckRoster', 'Classify', 'CommitChange', 'CoreCall', 'CreateGroup', 'DiscardPending', 'DrainOutbox',
        'Encrypt', 'INLINE_MAX_BYTES', 'MakeJoinRequest', 'OpenWelcome', 'Receive', 'TickRing', 'Timed',
        'TreeSnapshot', 'snapshot',
    ],
    'groupchat.client.session.driver': [
        'drive',
    ],
    'groupchat.client.session.duties': [
        'OpenDuties', 'online_leaves', 'open_duties',
    ],
    'groupchat.client.session.entry': [
        'Entry',
    ],
    'groupchat.client.session.eviction': [
        'ASK_AHEAD', 'eviction_removes', 'note_absent', 'offline_past_grace',
    ],
    'groupchat.client.session.inputs': [
        'ApproveRequested', 'CloseRequested', 'Connected', 'Disconnected', 'DropRequested', 'FrameReceived',
        'Input', 'InviteRequested', 'KickRequested', 'LeaveRequested', 'RekeyRequested', 'RevokeRequested',
        'Tick', 'Wake',
    ],
    'groupchat.client.session.machine': [
        'SessionMachine',
    ],
    'groupchat.client.session.membership': [
        'Membership',
    ],
    'groupchat.client.session.persistence': [
        'Kept', 'Unsent',
    ],
    'groupchat.client.session.phases': [
        'Arrival', 'Creation', 'Departure', 'Duties', 'Fresh', 'Hold', 'JoinAttempt', 'Link', 'OwnCommit',
        'Phase', 'RingRun', 'TRANSITIONS', 'Transition', 'Trigger', 'WantedInvite',
    ],
    'groupchat.client.session.presence_steps': [
        'PresenceSteps',
    ],
    'groupchat.client.session.rejections': [
        'Outcome', 'Rejection', 'commit_rejection', 'message_rejection', 'ring_rejection',
        'welcome_unopened',
    ],
    'groupchat.client.session.rejoin': [
        'AfterRemoval', 'FRESH_AFTER_MIN', 'GAP_RETRIES', 'GAP_RETRY_DELAY', 'JOIN_REPUBLISH_MAX',
        'after_removal', 'creation_turn', 'fresh_after', 'fresh_request_due', 'join_republish_delay',
        'should_create', 'stranded',
    ],
    'groupchat.client.session.ring_driver': [
        'JOINER_PATIENCE', 'RING_POLL', 'follow', 'joiner_failed', 'poll_due', 'rejoining_removes',
        'restart_removes',
    ],
    'groupchat.client.session.ring_steps': [
        'RingSteps',
    ],
    'groupchat.client.session.settings': [
        'AGENT', 'MAX_FRAME', 'MAX_TEXT_BYTES', 'SessionSettings', 'group_id_for_room', 'member_id',
    ],
    'groupchat.client.session.state': [
        'MachineState',
    ],
    'groupchat.client.session.updates': [
        'UpdateSchedule',
    ],
    'groupchat.client.session.views': [
        'RosterBook', 'RosterMade', 'build_tree_view', 'describe_epoch', 'epoch_kind', 'lookalikes',
        'roster_entries',
    ],
    'groupchat.client.session.worker': [
        'CoreWorker',
    ],
    'groupchat.client.session_store': [
        'SessionStore',
    ],
    'groupchat.client.store': [
        'HistoryEntry', 'KEY_FILE', 'Passphrase', 'Place', 'STORE_FILE', 'Store', 'StoreError',
        'StoredState', 'load_or_create_store_key', 'relay_place',
    ],
    'groupchat.client.store_command': [
        'NEW_PASSPHRASE_ENV', 'add_arguments', 'new_passphrase', 'run',
    ],
    'groupchat.client.store_key': [
        'PASSPHRASE_ENV', 'PLAIN_MAGIC', 'Passphrase', 'SEALED_MAGIC', 'StoreError', 'StoreKeyFile',
        'ask_passphrase', 'load_or_create_store_key', 'read_key_file', 'write_key_file',
    ],
    'groupchat.client.transcript': [
        'KEY_CHANGED_MARK', 'Transcript', 'UNREADABLE_MARK', 'render',
    ],
    'groupchat.client.trust': [
        'Sighting', 'TrustStore', 'TrustStoreError', 'safety_number',
    ],
    'groupchat.client.wording': [
        'ALREADY_RUNNING', 'BROKEN_CHANGE', 'BROKEN_REKEY', 'BROKEN_WELCOME', 'EMPTY_MESSAGE',
        'LEFT_BEFORE_RING', 'LEFT_EMPTY_GROUP', 'LEFT_NO_CONFIRMATION', 'LEFT_OFFLINE', 'LEFT_ROOM',
        'LEFT_SESSION', 'MISSED_FROM_LOG', 'NOT_ECHOED', 'NOT_RUNNING', 'NO_MARKER_ECHO', 'NO_REASON',
        'NO_SYNC_ECHO', 'NO_WELCOME_YET', 'RECONNECT_ORDER', 'RELAY_RESTARTED', 'REPLACED_STATUS',
        'STRANDED_CREATED', 'UPDATE_EVERY_TOO_SMALL', 'WELCOME_UNOPENED', 'ambiguous_member',
        'asks_to_join', 'at_epoch', 'bad_display_name', 'bad_invite', 'bad_invite_options', 'bad_relay_url',
        'bad_room_characters', 'bad_room_name', 'bad_scheme', 'behind_reentering', 'cannot_follow_change',
        'cannot_send_payload', 'could_not_commit', 'created', 'creation_fallback', 'describe_epoch',
        'disconnected', 'epoch_code_hint', 'evicted_coming_back', 'fork_detail', 'fresh_join_request',
        'gap_rejoin', 'invalid_change', 'invalid_ring_message', 'invite_line', 'invite_ready',
        'invites_changed', 'joined_tree', 'kick_self', 'left_removed_by', 'lookalike_member',
        'marked_unverified', 'marked_verified', 'member_renamed', 'missed_commit', 'more_asking',
        'no_member_named', 'no_one_asking', 'no_such_invite', 'not_a_payload', 'not_positive',
        'readded_unasked', 'reconnected', 'refused_room', 'relay_said', 'relay_text', 'removal_reason',
        'removed_by', 'removed_for_readd', 'replaced_elsewhere', 'sent_at_epoch', 'signed_change_refused',
        'signed_ring_message_refused', 'text_too_long', 'too_large', 'tree_cost', 'unknown_content',
        'welcome_refused',
    ],
    'groupchat.client.wording_connection': [
        'CONNECTION_CLOSED', 'CONNECTION_REFUSED', 'HOST_NOT_FOUND', 'NO_ANSWER', 'NO_WEBSOCKET',
        'bad_hello', 'bad_relay_port', 'http_status', 'not_a_relay', 'relay_url_without_host', 'retrying',
        'tls_failed', 'unreachable',
    ],
    'groupchat.client.wording_ring': [
        'could_not_restart_ring', 'joined_ring', 'late_restart', 'not_admitted', 'ring_cost', 'ring_failed',
        'ring_retried_early', 'ring_timed_out', 'welcome_ring',
    ],
    'groupchat.client.wording_store': [
        'RESTORED', 'STATE_TOO_OLD', 'STORE_FILE_LEAKED', 'STORE_KEY_LEAKED', 'history_sender',
        'no_history_for', 'no_store', 'outbox_unreadable', 'passphrase_removed', 'passphrase_set',
        'rejoin_because', 'scrollback_unreadable', 'unreadable_rows',
    ],
    'groupchat.client.wording_tui': [
        'ALREADY_IN_ROOM', 'CLOSED_STATUS', 'COMMAND_ONE_LINE', 'FINGERPRINT_MEANS', 'GROUP_CODE',
        'GROUP_CODE_MEANS', 'KEY_HELP', 'LEFT_GROUP', 'NOT_SENT_MARK', 'NO_EDITOR_HERE', 'NO_REJOIN_HERE',
        'OPEN_ROOM', 'OPEN_ROOM_SHORT', 'QUIT_LEAVING', 'QUIT_STAYING', 'RING_LEGEND',
        'SAFETY_NUMBER_MEANS', 'SEARCH_CLEARED', 'SEARCH_HOW', 'SESSION_ENDED', 'SET_BY_LEGEND',
        'TREE_EMPTY', 'TREE_LEGEND', 'TRUST_SELF', 'already_verified', 'date_separator', 'draft_is_long',
        'draft_over_limit', 'editor_failed', 'joining_again', 'not_verified', 'safety_number_means',
        'search_none', 'search_position', 'session_stopped', 'unknown_theme', 'unread_marker',
        'window_title',
    ],
    'groupchat.core.admission': [
        'ADMISSION_EXTENSION', 'Admissibility', 'AdmissionChange', 'AdmissionOutcome', 'AdmissionState',
        'Admit', 'ChangeType', 'Classification', 'DEFAULT_ADMISSION', 'Invite', 'MAX_CHANGES',
        'MAX_INVITES', 'MAX_LABEL', 'MAX_RETURNING', 'MAX_USED_INIT_KEYS', 'NewInvite', 'RemovalCode',
        'RemovalReason', 'Returning', 'USED_INIT_KEYS_EXTENSION', 'UsedInitKey', 'apply_changes',
        'init_key_ref', 'used_after',
    ],
    'groupchat.core.codec': [
        'MAX_VARINT', 'Reader', 'Writer', 'encode_varint', 'opaque',
    ],
    'groupchat.core.commit': [
        'Commit', 'CommitMessage', 'MAX_COMMIT_BODY', 'MAX_OPERATIONS', 'OPERATION_ORDER', 'OpType',
        'Operation', 'REKEY_LABEL', 'SealedSecret', 'check_operation_order', 'rekey_context',
    ],
    'groupchat.core.config': [
        'DEFAULT_ROUND_TIMEOUT', 'GroupConfigFields', 'MAX_ROUND_TIMEOUT', 'check_group_config',
    ],
    'groupchat.core.epoch.machine': [
        'Input', 'MEMBER_INPUTS', 'Phase', 'TRANSITIONS', 'check', 'check_transition', 'phase_of',
    ],
    'groupchat.core.epoch.roster': [
        'RosterCheck', 'RosterChecking', 'RosterVerified',
    ],
    'groupchat.core.epoch.persist': [
        'STATE_VERSION', 'STATE_WIRE_FORMAT', 'decode_state', 'encode_state',
    ],
    'groupchat.core.errors': [
        'AdmissionChangeError', 'ConfigError', 'ConfirmationError', 'CounterLimitError', 'CryptoError',
        'DecodeError', 'DecryptionError', 'DuplicateKeyError', 'EpochError', 'EpochLimitError',
        'ExpiredJoinRequestError', 'FieldTooLargeError', 'ForgedMemberError', 'GenerationError',
        'GroupChatError', 'HoldMessagesError', 'InconsistentPathError', 'InvalidCommitError',
        'InvalidInviteCodeError', 'InvalidInviteError', 'InvalidPublicKeyError', 'InvalidValueError',
        'InvalidWelcomeError', 'LateRestartError', 'LocalError', 'NonMinimalLengthError', 'ProtocolError',
        'RemoteError', 'RemovedSenderError', 'ReplayError', 'SignatureError', 'TaintRuleError',
        'TrailingDataError', 'TruncatedError', 'UnknownMemberError', 'UnknownVersionError', 'UsageError',
        'WrongGroupError', 'WrongSchemeError',
    ],
    'groupchat.core.events': [
        'EpochChanged', 'Event', 'FailureKind', 'Member', 'MessageEchoed', 'MessageReceived', 'RekeyFailed',
        'RekeyProgress', 'RekeyTimedOut', 'RemovedFromGroup',
    ],
    'groupchat.core.fingerprints': [
        'fingerprint',
    ],
    'groupchat.core.framing': [
        'CONFIRMATION_TAG_LEN', 'ContentType', 'FramedContent', 'MEMBER_SENDER', 'MESSAGE_HEADS',
        'SENDER_FIELDS', 'SIGNATURE_LEN', 'SIGNATURE_PREFIX', 'WireFormat', 'confirmed_transcript_input',
        'framed_content_auth_data', 'framed_content_tbs', 'membership_tag', 'read_message_header',
        'sign_framed_content', 'verify_framed_content', 'verify_membership_tag',
    ],
    'groupchat.core.group': [
        'Group', 'GroupConfig', 'GroupState', 'SCHEME_EXTENSION',
    ],
    'groupchat.core.identity': [
        'DEFAULT_JOIN_REQUEST_LIFETIME', 'Identity', 'JoinRequest', 'MAX_DISPLAY_NAME', 'MAX_GROUP_ID',
        'MAX_JOIN_REQUEST_LIFETIME', 'PendingJoin', 'epoch_code', 'fingerprint', 'validate_display_name',
    ],
    'groupchat.core.invite': [
        'INVITE_CODE_PREFIX', 'INVITE_PROOF_LABEL', 'InviteSecret', 'prove', 'verify_proof',
    ],
    'groupchat.core.key_schedule': [
        'EpochSecrets', 'GroupContext', 'confirmation_tag', 'confirmed_transcript_hash',
        'derive_epoch_secrets', 'epoch_secrets_from_joiner', 'expand_with_label_short', 'exporter',
        'external_psk_id', 'interim_transcript_hash', 'psk_secret', 'public_state_key_nonce',
        'verify_confirmation_tag', 'welcome_key_nonce',
    ],
    'groupchat.core.message_protection': [
        'ApplicationWire', 'ContentType', 'DecryptedContent', 'FramedContent', 'MAX_APPLICATION_DATA',
        'MAX_AUTHENTICATED_DATA', 'MAX_CIPHERTEXT', 'MAX_GROUP_ID', 'PrivateMessage', 'SenderData',
        'WireFormat', 'confirmed_transcript_input', 'decrypt_content', 'decrypt_sender_data',
        'framed_content_auth_data', 'framed_content_tbs', 'membership_tag', 'open_application',
        'open_private_message', 'protect_application', 'protect_private_message', 'ratchet_kind',
        'read_application_data', 'read_message_header', 'seal_application', 'sign_framed_content',
        'verify_application', 'verify_framed_content', 'verify_membership_tag',
    ],
    'groupchat.core.outbox': [
        'Joiner', 'Outbound', 'OutboundKind', 'ROOM', 'Recipient', 'Room',
    ],
    'groupchat.core.peek': [
        'MessageKind', 'Peek', 'peek',
    ],
    'groupchat.core.schemes': [
        'AttemptFailedError', 'EquivocationError', 'RING_WIRE_FORMAT', 'RingRekey', 'RingResult',
        'RingRound', 'RingState', 'RingStep', 'RingTimeoutError', 'RosterMismatchError', 'RoundOrderError',
        'WrongAttemptError',
    ],
    'groupchat.core.schemes.base': [
        'EpochInput', 'KeyAgreementScheme', 'OwnChange', 'RunStep', 'SCHEME_IDS', 'StagedChange',
    ],
    'groupchat.core.schemes.registry': [
        'DEFAULT_SCHEME', 'SCHEMES', 'scheme_class',
    ],
    'groupchat.core.schemes.ring': [
        'DEFAULT_TIMEOUT', 'MAX_ATTEMPT', 'RingRekey', 'RingResult', 'RingState', 'RingStep',
        'commit_secret', 'edge_key', 'message_size', 'ring_id', 'roster_hash', 'round1_hash',
        'transcript_hash', 'walk_ring', 'xor',
    ],
    'groupchat.core.schemes.ring_errors': [
        'AttemptFailedError', 'EquivocationError', 'RingTimeoutError', 'RosterMismatchError',
        'RoundOrderError', 'WrongAttemptError',
    ],
    'groupchat.core.schemes.ring_kdf': [
        'KEY_LEN', 'commit_secret', 'edge_key', 'message_size', 'revealed_value', 'ring_id', 'roster_hash',
        'round1_hash', 'transcript_hash', 'walk_ring', 'xor',
    ],
    'groupchat.core.schemes.ring_message': [
        'ATTEMPT_WINDOW', 'MAX_CONTEXT', 'RING_WIRE_FORMAT', 'ROUNDS', 'RingRound',
    ],
    'groupchat.core.schemes.ring_scheme': [
        'RingScheme',
    ],
    'groupchat.core.schemes.tree': [
        'MAX_CAPACITY', 'PathSecrets', 'RatchetTree', 'TreeChanges', 'TreeScheme', 'lowest_common_ancestor',
    ],
    'groupchat.core.schemes.tree.derivation': [
        'BlankHashes', 'commit_secret_of', 'hash_leaf', 'hash_parent', 'node_secret',
    ],
    'groupchat.core.schemes.tree.ratchet_tree': [
        'MAX_CAPACITY', 'PathSecrets', 'RatchetTree', 'TreeChanges', 'lowest_common_ancestor',
    ],
    'groupchat.core.schemes.tree.scheme': [
        'TreeScheme',
    ],
    'groupchat.core.schemes.tree.taint': [
        'add_targets', 'check_commit', 'required_rekeys',
    ],
    'groupchat.core.schemes.tree.tree_codec': [
        'FORMAT', 'MAX_CAPACITY', 'PublicTree', 'TreeRecords', 'decode_public_tree', 'encode_public_tree',
    ],
    'groupchat.core.secret_tree': [
        'KeyLookup', 'RatchetKind', 'SecretTree',
    ],
    'groupchat.core.suite': [
        'CipherSuite', 'GROUPCHAT_PREFIX', 'KeyedHmac', 'MLS_PREFIX', 'check_x25519_public',
        'expand_block', 'expand_blocks', 'expand_three', 'extract_unsalted', 'is_x25519_public',
        'x25519_exchange',
    ],
    'groupchat.core.text': [
        'UNSAFE_CATEGORIES', 'has_unsafe', 'sanitise',
    ],
    'groupchat.core.tree_math': [
        'bottom_up', 'copath', 'direct_path', 'is_leaf', 'leaf_path', 'left', 'level', 'levels',
        'lowest_common_ancestor', 'node_width', 'parent', 'parents_bottom_up', 'right', 'root', 'sibling',
    ],
    'groupchat.core.version': [
        'PROTOCOL_VERSION',
    ],
    'groupchat.core.welcome': [
        'EncryptedGroupSecrets', 'GroupInfo', 'GroupSecrets', 'MAX_GROUP_INFO', 'MAX_PUBLIC_STATE',
        'SECRETS_EXTENSION', 'Welcome', 'WelcomeMessage', 'committed_secrets', 'decode_extensions',
        'decrypt_group_info', 'encode_extensions', 'key_package_ref', 'open_group_secrets',
        'open_public_state', 'seal_welcome', 'secrets_commitment', 'signed_group_info',
    ],
    'groupchat.lab.bench.floor': [
        'CLOCKS', 'Clock', 'Floor', 'MESSAGE_BYTES', 'depth', 'measure_floor', 'median', 'per_op_us',
    ],
    'groupchat.lab.bench.rekey': [
        'DEFAULT_REPEAT', 'DEFAULT_SIZES', 'Floor', 'LARGE_SIZES', 'add_arguments', 'main', 'measure_floor',
        'print_beside', 'run',
    ],
    'groupchat.lab.bench.relay': [
        'main',
    ],
    'groupchat.lab.bench.ring': [
        'DEFAULT_REPEAT', 'DEFAULT_SIZES', 'RingFloors', 'main', 'ring_floors', 'run',
    ],
    'groupchat.lab.bench.scene': [
        'COMMITTER', 'COMMITTER_SIBLING', 'CREATOR', 'GROUP_ID', 'Scene', 'VICTIM', 'VICTIM_SIBLING',
        'build_group', 'deliver', 'lca_level', 'take_welcome',
    ],
    'groupchat.lab.bench.session': [
        'main',
    ],
    'groupchat.lab.bench.targets': [
        'TARGETS', 'Target', 'header', 'target', 'target_line', 'verdict',
    ],
    'groupchat.lab.bench.tree': [
        'OPS', 'OpSamples', 'SizeResult', 'TAINT_KS', 'TAINT_VARIANTS', 'TaintSamples', 'bench_size',
        'bench_taint',
    ],
    'groupchat.lab.clock': [
        'DEFAULT_WALL', 'ManualClock',
    ],
    'groupchat.lab.demo': [
        'PeerView', 'SentMessage', 'add_arguments', 'find_problems', 'main', 'run',
    ],
    'groupchat.lab.demo_attack': [
        'Attack', 'Bot', 'MODES', 'Mode', 'NO_ATTACK', 'Run', 'SHORT_BOUNDS', 'describe_modes',
    ],
    'groupchat.lab.demo_checks': [
        'PeerView', 'SentMessage', 'find_problems',
    ],
    'groupchat.lab.hostile.loopback': [
        'LIMITS', 'LoopbackRelay',
    ],
    'groupchat.lab.hostile.policy': [
        'Policy', 'VirtualMember', 'core_kind', 'forged_request', 'is_chat', 'is_commit', 'payload_kind',
        'with_epoch',
    ],
    'groupchat.lab.keeper': [
        'Deriver', 'EpochView', 'Keeper', 'RecordingRand', 'harvest',
    ],
    'groupchat.lab.room': [
        'Delivery', 'Receiver', 'Room',
    ],
    'groupchat.lab.sim.churn': [
        'CHURN_HELP', 'ChurnError', 'KINDS', 'Step', 'initial_names', 'parse_churn', 'random_schedule',
    ],
    'groupchat.lab.sim.command': [
        'MAX_MEMBERS', 'add_arguments', 'parse_fault', 'parse_sizes', 'run',
    ],
    'groupchat.lab.sim.compare': [
        'DEFAULT_RING_BUDGET_S', 'DEFAULT_SIZES', 'Point', 'SCHEMES', 'compare', 'pairwise_point',
        'ring_point', 'tree_point',
    ],
    'groupchat.lab.sim.counting': [
        'Costs', 'OPS', 'OpCounter', 'since',
    ],
    'groupchat.lab.sim.figures': [
        'JOIN_SIZES', 'JoinPoint', 'TAINT_KS', 'TaintPoint', 'join_point', 'main', 'render_tables',
        'replace_section', 'taint_point',
    ],
    'groupchat.lab.sim.report': [
        'PLOT_HINT', 'Progress', 'TIME_NOTE', 'by_operation', 'compare_json', 'need_matplotlib',
        'plot_compare', 'plot_loglog', 'plot_sim', 'print_compare', 'print_sim', 'sim_json',
    ],
    'groupchat.lab.sim.run': [
        'Checks', 'FULL_MESH_MAX', 'Fault', 'JOINERS_PER_STEP', 'JOINER_LOOKBACK', 'SAMPLED_SENDERS',
        'SimResult', 'StepResult', 'check_step', 'simulate',
    ],
    'groupchat.lab.sim.secrecy': [
        'Attacker', 'EpochRecord', 'Probe',
    ],
    'groupchat.lab.sim.world': [
        'Failure', 'GROUP_ID', 'Member', 'Removed', 'SimRoom', 'World',
    ],
    'groupchat.relay_protocol': [
        'Ack', 'ClientFrame', 'DEFAULT_MAX_FRAME', 'Deliver', 'ENVELOPE_VERSION', 'Error', 'ErrorCode',
        'Frame', 'FrameType', 'Hello', 'Join', 'Joined', 'Leave', 'MAX_CODE_LEN', 'MAX_ID_LEN',
        'MAX_MEMBERS_LISTED', 'MAX_REASON_LEN', 'Presence', 'PresenceEvent', 'Publish', 'SendTo',
        'ServerFrame', 'ServerHello', 'ServerLimits', 'UnknownFrameTypeError', 'decode', 'decode_client',
        'decode_server', 'deliver_prefix', 'deliver_rest', 'encode', 'error_code_for', 'max_payload_for',
    ],
    'groupchat.relay_protocol.codec': [
        'decode', 'decode_client', 'decode_server', 'deliver_prefix', 'deliver_rest', 'encode',
        'error_code_for',
    ],
    'groupchat.relay_protocol.frames': [
        'Ack', 'ClientFrame', 'DEFAULT_MAX_FRAME', 'Deliver', 'ENVELOPE_VERSION', 'Error', 'ErrorCode',
        'Frame', 'FrameType', 'Hello', 'Join', 'Joined', 'Leave', 'MAX_CODE_LEN', 'MAX_ID_LEN',
        'MAX_MEMBERS_LISTED', 'MAX_REASON_LEN', 'Presence', 'PresenceEvent', 'Publish', 'SendTo',
        'ServerFrame', 'ServerHello', 'ServerLimits', 'UnknownFrameTypeError', 'max_payload_for',
    ],
    'groupchat.tui': [
        'ChatApp', 'run_chat',
    ],
    'groupchat.tui.app': [
        'ChatApp', 'check_theme', 'run_chat',
    ],
    'groupchat.tui.command': [
        'add_arguments', 'main', 'run',
    ],
    'groupchat.tui.commands': [
        'COMMANDS', 'Command', 'CommandError', 'CommandName', 'SendText', 'help_lines', 'invite_options',
        'parse_input', 'usage',
    ],
    'groupchat.tui.draft': [
        'CONFIRM_BYTES', 'CONFIRM_LINES', 'DraftCheck', 'check_draft', 'split_text',
    ],
    'groupchat.tui.highlight': [
        'ACTION_PREFIX', 'Attention', 'BELL_MODES', 'PALETTE', 'action_of', 'match_spans', 'member_colour',
        'names_me', 'own_names',
    ],
    'groupchat.tui.keys': [
        'MODIFIERS', 'check_keymap', 'key_names',
    ],
    'groupchat.tui.messages': [
        'ChatLineNotice', 'ConfirmedNotice', 'PlaceholderNotice', 'RosterNotice', 'SessionEnded',
        'StatusNotice', 'TimelineNotice', 'TreeNotice', 'message_for',
    ],
    'groupchat.tui.session_api': [
        'NoticeSink', 'SessionAPI', 'SessionFactory',
    ],
    'groupchat.tui.widgets': [
        'HistoryInput', 'LogEntry', 'MemberList', 'MessageLog', 'StatusBar', 'TreePanel', 'UnreadMarker',
    ],
    'groupchat.tui.widgets.history_input': [
        'HistoryInput', 'complete_name',
    ],
    'groupchat.tui.widgets.member_list': [
        'BADGE', 'MemberList', 'roster_text',
    ],
    'groupchat.tui.widgets.message_log': [
        'CONTINUED', 'LogEntry', 'MessageLog', 'PENDING_MARK',
    ],
    'groupchat.tui.widgets.status_bar': [
        'StatusBar', 'status_text',
    ],
    'groupchat.tui.widgets.tree_panel': [
        'TreePanel', 'tree_text',
    ],
    'groupchat.tui.widgets.unread_marker': [
        'UnreadMarker',
    ],
    'server.__main__': [
        'add_arguments', 'build_parser', 'config_from_args', 'main', 'run', 'serve',
    ],
    'server.backend': [
        'Backend', 'Hooks', 'JoinRefused', 'JoinResult', 'MemoryBackend',
    ],
    'server.clock': [
        'Clock', 'ManualClock', 'MonotonicClock',
    ],
    'server.config': [
        'Limits', 'RelayConfig',
    ],
    'server.logs': [
        'configure', 'fmt_id', 'log_event', 'logger',
    ],
    'server.ratelimit': [
        'TokenBucket',
    ],
    'server.redis_backend': [
        'RedisBackend', 'redis_backend_factory',
    ],
    'server.redis_server': [
        'RedisProcess', 'free_port', 'redis_available', 'start_redis',
    ],
    'server.relay': [
        'Relay',
    ],
}


def _modules_with_all() -> set[str]:
    found = set()
    for pkg in (groupchat, server):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if hasattr(importlib.import_module(info.name), "__all__"):
                found.add(info.name)
    return found


def test_every_module_with_all_is_pinned() -> None:
    assert _modules_with_all() == set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_pinned_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    assert sorted(exported) == sorted(PUBLIC[name])
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not define: {missing}"
