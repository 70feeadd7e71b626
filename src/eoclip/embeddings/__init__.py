"""Embedding tables: one vector per chip and modality, stored as GeoParquet; exported from a
checkpoint (`eoclip.embeddings.export`) or imported from another product
(`eoclip.embeddings.importing`)."""

from eoclip.embeddings.importing import ImportConfig, ImportEmbeddingsError, import_embeddings
from eoclip.embeddings.table import (
    EMB_PREFIX,
    META_KEY,
    EmbeddingTableError,
    embedding_matrix,
    embedding_modalities,
    read_embedding_table,
    table_identity,
    write_embedding_table,
)

__all__ = [
    "EMB_PREFIX",
    "META_KEY",
    "EmbeddingTableError",
    "ImportConfig",
    "ImportEmbeddingsError",
    "embedding_matrix",
    "embedding_modalities",
    "import_embeddings",
    "read_embedding_table",
    "table_identity",
    "write_embedding_table",
]
