"""Zonda's postgres provider. Its hooks and operators come with the providers issue."""
