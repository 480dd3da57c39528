"""Zonda's elasticsearch provider. Its hooks and operators come with the providers issue."""
