"""The randomisation methods as pure Python: no database, no requests.

- :mod:`~bhp_ctms.randomisation.methods.scheme` reads and checks a study's
  ``randomisation`` section into a :class:`~bhp_ctms.randomisation.methods.scheme.Scheme`;
- :mod:`~bhp_ctms.randomisation.methods.lists` generates, writes and reads the
  allocation lists of the list methods (simple, permuted blocks, big stick);
- :mod:`~bhp_ctms.randomisation.methods.minimisation` scores and chooses arms by
  Pocock-Simon minimisation;
- :mod:`~bhp_ctms.randomisation.methods.simulate` runs a scheme many times over and
  reports the imbalance it leaves (``ctms randomisation simulate``).

Everything is reproducible from a seed text on any machine and Python version: each
random stream is a :class:`random.Random` seeded with a string (version 2 seeding,
stable since Python 3.2) and only its ``random()`` and ``randrange()`` are used.
"""
