"""A relay that misbehaves on purpose: the policy of the attack tests and ``groupchat demo --attack``.

:mod:`.policy` says which frames reach whom (and makes the payloads a relay can forge);
:mod:`.loopback` is a websockets relay on 127.0.0.1 that obeys it, for real sessions.
"""
