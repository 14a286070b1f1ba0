"""Offline jobs: saliency, the dual-branch fusion model, training, evaluation, ONNX export.

Only the exported ``models/weights/*.onnx`` and its sidecar reach the worker.
"""
