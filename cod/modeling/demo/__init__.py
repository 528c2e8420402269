"""The embedded default models behind the word `demo`: how they are built (`build`) and the probe recipe (`recipe`)."""

from cod.modeling.demo.build import (
    build_demo_teacher,
    demo_student_path,
    demo_teacher_dir,
    demo_teacher_path,
    is_built,
)

__all__ = ["build_demo_teacher", "demo_student_path", "demo_teacher_dir", "demo_teacher_path", "is_built"]
