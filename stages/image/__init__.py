"""Image curation stages: decode and validate, size and aspect filters, perceptual hashes,
CLIP embeddings, aesthetic and NSFW scores. Rows carry the original bytes in `image`."""
