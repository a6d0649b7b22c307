"""1:N identification against a gallery of enrolled identities: the search of probe embeddings
among the gallery's templates (:mod:`mfr.gallery.search`: exact in numpy, or through an optional
faiss index re-ranked exactly)."""
