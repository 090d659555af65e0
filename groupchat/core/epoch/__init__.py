"""The epoch machine behind :class:`groupchat.core.group.Group`, one module per job.

* :mod:`.machine`: the phases, inputs, transition table and guards (the rules of *when*);
* :mod:`.state`: the epoch state, previous-epoch retention, the data of each phase, removal;
* :mod:`.admission`: join-request and commit-operation checks, a joiner's check of a Welcome's leaves;
* :mod:`.protection`: application messages in and out;
* :mod:`.agreement`: a multi-round scheme's epoch change (runs, restarts, deadline, confirmation);
* :mod:`.building`: our commit, its Welcome, its echo, and the rebuild of a lost one;
* :mod:`.processing`: a received commit, in the order of docs/protocol.md §4.2;
* :mod:`.joining`: entering a group from a Welcome;
* :mod:`.wire`: extension numbers, the confirmation message, the last epoch.

Each job is a class that the next builds on (``EpochState`` ← ``Admission`` ← ``Protection`` and
``Agreement`` ← ``Building`` ← ``Processing`` ← ``Joining``); ``Group`` combines them and is the only
public entry point. docs/protocol.md §10 says which rule lives where.
"""
