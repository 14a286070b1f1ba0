"""The real-time worker: stream -> detect -> saliency -> infer -> track -> publish.

Consumes only the exported ONNX model and its JSON sidecar; never imports service/ or models/.
"""
