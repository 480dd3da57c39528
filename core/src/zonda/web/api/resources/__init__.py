"""The API's resources, one module each; each has ``routes()``, the declarations of its endpoints."""
