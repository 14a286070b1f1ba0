"""The service: FastAPI API and dashboard, Postgres storage (Alembic), Redis ingest, live updates.

Never imports torch, cv2, onnxruntime, facenet_pytorch or models/ (import-linter enforces it).
"""
