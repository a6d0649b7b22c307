"""1:N identification against a gallery of enrolled identities.

- :mod:`mfr.gallery.store`: a gallery (``Gallery``): enrol, add, remove, refresh, identify, save
  and load a folder; the embedder that made it recorded and checked
  (:mod:`mfr.gallery.signature`);
- :mod:`mfr.gallery.photos`: photos listed and embedded, each photo's fate recorded;
- :mod:`mfr.gallery.search`: the search of probe embeddings among the templates, exact in numpy,
  or through an optional faiss index re-ranked exactly (:mod:`mfr.gallery.index`);
  :mod:`mfr.gallery.raw_search` for dlib's raw Euclidean distance;
- :mod:`mfr.gallery.decide`: thresholds (given, a study's, calibrated on the gallery, or a
  network's documented one) and decisions;
- :mod:`mfr.gallery.measure`: open-set searches for NIST's FNIR / FPIR
  (:mod:`mfr.evaluation.open_set`);
- :mod:`mfr.gallery.sharded`: a large enrolment in shards, on the local or Ray executor.
"""
