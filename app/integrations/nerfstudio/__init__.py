"""nerfstudio interoperability (the ``nerfstudio`` extra): ``methods`` (``ns-train fieldforge-*``, entry points in
``pyproject.toml``), ``model`` (a nerfstudio ``Model`` around FieldForge's ``NerfModel``) and ``teacher`` (nerfstudio
runs as distillation teachers). ``methods`` and ``model`` import nerfstudio; this package and ``teacher`` do not
until a nerfstudio run is actually loaded."""
