"""The REST API's small framework: routes declared with their models and permission (:mod:`.routes`), list
parameters and cursors (:mod:`.listing`), JSON errors (:mod:`.errors`), conditional GETs (:mod:`.etag`), and the
OpenAPI document built from the same declarations (:mod:`.openapi`). The resources are in :mod:`.resources`."""
