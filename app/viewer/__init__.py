"""The interactive web viewer (viser): ``fieldforge view RUN`` and ``fieldforge train <task> ... --viewer``.

- ``cameras``: viser's client camera (OpenCV: +z forward, y down) ↔ our OpenGL camera-to-world, pinhole
  intrinsics from the client's vertical field of view, and the progressive resolution ladder;
- ``renderers``: one renderer per kind of field, chosen through capabilities (``Renderable`` volume
  rendering, ``HasSDF`` sphere tracing, image fields as a zoomable plane);
- ``server``: the viser server (per-client progressive rendering, scene, panels, export buttons);
- ``pacing``: the rule that shares wall time between the optimizer and the viewer (``Pacer``);
- ``live``: the training callback that serves the viewer while a run trains;
- ``extra``: ``require_viewer``, the check that viser 1.1 (the ``viewer`` extra) is installed, made before anything is written.
"""
