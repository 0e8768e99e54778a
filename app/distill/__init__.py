"""Distillation: any trained run (the teacher) into any method preset of its signal type (the student).

``teacher`` loads teachers (``load_teacher``; the extension point for other tools' checkpoints),
``losses`` holds the distillation losses, ``image`` / ``sdf`` / ``nerf`` / ``kilonerf`` the trainer tasks.
The task definition and the run configs are in ``fieldforge.app.tasks.distill``; the command is
``fieldforge distill`` (``fieldforge.app.commands_distill``).
"""
