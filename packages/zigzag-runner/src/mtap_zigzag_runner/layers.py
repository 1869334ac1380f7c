"""Layer tables: read through the kit's one reader, :mod:`mtap_schemas.layers`."""

from mtap_schemas.layers import (
    DIMS,
    LAYERS_DIR,
    MODELS,
    Layer,
    LayerTable,
    LayerTableError,
    load_table,
    load_tables,
    table_path,
)

__all__ = ["DIMS", "LAYERS_DIR", "MODELS", "Layer", "LayerTable", "LayerTableError", "load_table", "load_tables", "table_path"]
