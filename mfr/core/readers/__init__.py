"""One reader per kind of input: every file or folder a user hands mfr goes through one of these.

Each reader refuses bad input with one :class:`mfr.core.errors.MfrError` line naming the file
and what was expected, or lists what it passed over (a folder listing's unreadable entry), and
never raises another exception on any input:

- :mod:`.paths` -- what a path is (a regular file, a folder; a FIFO, a device, a symlink loop
  refused before any ``open``), relative paths contained in their tree, folder listings that
  list symlink loops and unreadable entries instead of failing;
- :mod:`.text` -- text files (a size bound, UTF-8 only, a BOM dropped, NUL bytes refused) and
  JSON files of a given shape; :func:`.text.excerpt` is how every message quotes a value;
- :mod:`.tables` -- CSV tables with a schema (the columns, the field count of every row, the
  type of each column);
- :mod:`.profiles` -- YAML profiles (a size bound, no anchors or aliases, no key given twice,
  no expanded value echoed);
- :mod:`.images` -- image files (regular files only, a pixel bound, one decode and one
  orientation policy for every command);
- :mod:`.numbers` -- bounded numbers for command options (a minimum and, where it makes
  sense, a maximum), checked when the arguments are parsed, before any slow import.

They import nothing heavy (no Keras, no TensorFlow; PIL and pandas only when used), so a
command checks its arguments and inputs in well under a second.
"""
