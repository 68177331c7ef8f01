"""Pure contracts shared by every layer: the run lifecycle, the command grammar, the PRP, the
`.github/factory.yml` schema, the job models, the hidden markers and the stop reasons.

Nothing here imports anything else of ours, does I/O or keeps state: the modules can be read,
and tested, on their own. ``tests/test_layers.py`` keeps it that way.
"""
