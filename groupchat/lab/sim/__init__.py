"""``groupchat sim``: a whole group in one process, every invariant checked after every step.

``churn`` (the schedule), ``counting`` (primitives per member), ``world`` (members on the lab's
room), ``secrecy`` (the keeper's attacks), ``run`` (one simulation and its checks), ``compare``
(tree, ring and a pairwise baseline by group size), ``report`` (table, JSON, plot) and ``command``
(the CLI). See ``docs/lab.md``, "groupchat sim".
"""
