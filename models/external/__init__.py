"""Labelled faces from photos and recordings that are not in ``../shared``.

``python -m models.external fetch``, ``faces`` and ``build`` (see ``__main__``) turn labelled
media into a manifest folder in the shared format, so ``models.evaluate`` scores a model on
people it has never seen and ``models.train --data-dir`` can train on your own classroom data.
"""
