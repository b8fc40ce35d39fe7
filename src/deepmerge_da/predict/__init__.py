"""Classify your own cutouts with trained checkpoints (``deepmerge-da predict``).

:mod:`~deepmerge_da.predict.inputs` finds the files (and fetches the SDSS cutouts of catalogues),
:mod:`~deepmerge_da.predict.readers` reads each image, :mod:`~deepmerge_da.predict.ensemble` preprocesses and
classifies them with one or more checkpoints (:func:`predict`), and :mod:`~deepmerge_da.predict.outputs` names and
writes the CSVs.
"""
from deepmerge_da.predict.ensemble import predict

__all__ = ["predict"]
