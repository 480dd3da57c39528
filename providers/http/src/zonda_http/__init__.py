"""Zonda's http provider. Its hooks and operators come with the providers issue."""
