"""Rerun a cancelled or failed build, wait for it, and confirm its images now exist."""

from __future__ import annotations

from dataclasses import dataclass

from guard.actions import Action, ActionContext, Outcome
from guard.gateways.ecr import Boto3Ecr, ImageInfo, ImageStatus
from guard.models import ImageRef

_RERUNNABLE = frozenset({"cancelled", "failure", "timed_out", "startup_failure"})


@dataclass(frozen=True)
class RerunBuild(Action):
    """Rerun GitHub Actions run `run_id`; verified only when the run succeeded AND `images` exist in ECR."""

    repository: str
    run_id: int
    images: tuple[str, ...]

    kind = "rerun_build"
    title = "Rerun a cancelled or failed build"
    iam_actions = frozenset({"ecr:BatchGetImage"})  # the run itself is GitHub's

    @property
    def resource(self) -> str:
        """`github:OWNER/REPO`."""
        return f"github:{self.repository}"

    def describe(self) -> str:
        """What a person approves."""
        return f"rerun build {self.run_id} of {self.repository} to push {', '.join(self.images)}"

    def _images(self, ctx: ActionContext) -> Outcome:
        answers = Boto3Ecr(ctx.aws).lookup(ImageRef.parse(i) for i in self.images)
        missing = sorted(u for u, a in answers.items()
                         if not (isinstance(a, ImageInfo) and a.status is ImageStatus.PRESENT))
        return Outcome(not missing, f"missing: {', '.join(missing)}" if missing else "every image exists",
                       {"missing": missing})

    def precondition(self, ctx: ActionContext) -> Outcome:
        """The run exists and ended without success (or it succeeded and the images are there: done)."""
        run = ctx.github.run(self.repository, self.run_id)
        evidence = {"status": run.status, "conclusion": run.conclusion, "attempt": run.run_attempt,
                    "url": run.html_url}
        if run.status == "completed" and run.conclusion == "success":
            images = self._images(ctx)
            if images.ok:
                return Outcome(True, "the build already succeeded and its images exist", evidence,
                               done_already=True)
            return Outcome(False, f"the build succeeded but did not push the images ({images.reason})", evidence)
        if run.status != "completed":
            return Outcome(True, f"a rerun is already {run.status}", evidence)
        if run.conclusion not in _RERUNNABLE:
            return Outcome(False, f"run concluded {run.conclusion}: not rerunnable", evidence)
        return Outcome(True, f"run concluded {run.conclusion}", evidence)

    def execute(self, ctx: ActionContext) -> None:
        """POST rerun, unless an attempt is already queued or running (so a resumed run never doubles it)."""
        if ctx.github.run(self.repository, self.run_id).status == "completed":
            ctx.github.rerun(self.repository, self.run_id)

    def postcondition(self, ctx: ActionContext) -> Outcome:
        """The rerun concluded success and the images exist in ECR."""

        def probe() -> Outcome:
            run = ctx.github.run(self.repository, self.run_id)
            evidence = {"status": run.status, "conclusion": run.conclusion, "attempt": run.run_attempt}
            if run.status != "completed":
                return Outcome(False, f"run {self.run_id} is {run.status}", evidence)
            return Outcome(True, f"run {self.run_id} concluded {run.conclusion} (attempt {run.run_attempt})",
                           evidence)

        finished = ctx.until(f"build {self.run_id}", probe)
        if not finished.ok or finished.evidence.get("conclusion") != "success":
            return Outcome(False, finished.reason, finished.evidence)
        images = self._images(ctx)
        return Outcome(images.ok, f"{finished.reason}; {images.reason}", {**finished.evidence, **images.evidence})
