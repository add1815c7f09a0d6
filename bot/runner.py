"""One job's way from a worktree to a pull request.

The job's persisted state says where it stands, so a job picked up again
after a restart continues from its last step instead of starting over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from bot.agents.base import AgentError, AgentEvent, AgentRequest
from bot.config import RepoConfig
from bot.forge import ForgeError, Issue, pull_request_body, pull_request_title
from bot.messages import Outbound, format_duration
from bot.verify import run_tests
from bot.workspace import WorkspaceError, Worktree
from storage import Job
from storage.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    PREPARING,
    PUBLISHING,
    RUNNING,
    VERIFYING,
)

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

DRAFT, KEEP, DISCARD = "Open a draft PR", "Keep the branch", "Discard"


class JobFailed(Exception):
    """Ends a job as failed; the message is shown in chat as it is."""


class JobRunner:
    """Runs jobs for the engine: prepare, agent, verify, publish."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.jobs = engine.storage.jobs

    async def run(self, job: Job) -> None:
        """Take `job` from its current state to done, failed or cancelled."""
        try:
            await self._run(job)
        except JobFailed as exc:
            await self._finish(job, FAILED, str(exc), kind="failure")
        except asyncio.CancelledError:
            if self.engine.stopping:
                log.info("Job %s: paused in %s for shutdown", job.id, job.state)
            else:
                await self._finish(
                    job,
                    CANCELLED,
                    f"Job {job.id} cancelled. Branch {job.branch} is kept.",
                    kind="result",
                )
            raise
        except Exception:
            log.exception("Job %s: unexpected error", job.id)
            await self._finish(
                job,
                FAILED,
                f"Job {job.id} failed on an internal error. See `logs {job.id}`.",
                kind="failure",
            )
        finally:
            self.engine.notifier.forget(job.id)

    async def _run(self, job: Job) -> None:
        repo = self.config.repos.get(job.repo)
        if repo is None:
            raise JobFailed(f"Job {job.id}: repo {job.repo} is no longer configured.")
        resume_at = job.state

        self.jobs.update(job, state=PREPARING, started_at=job.started_at or time.time())
        worktree = await self._prepare(job, repo)

        if resume_at not in (VERIFYING, PUBLISHING):
            prompt = job.next_prompt or await self._initial_prompt(job, worktree)
            self.jobs.update(job, state=RUNNING, next_prompt="")
            await self.engine.notifier.progress(job, "agent started")
            await self._agent(job, worktree, prompt)

        if resume_at != PUBLISHING and not await self._verify(job, worktree, repo):
            return
        await self._publish(job, worktree, repo)

    async def _prepare(self, job: Job, repo: RepoConfig) -> Worktree:
        fresh = not (job.worktree or job.session_id or job.commit or job.followups)
        try:
            worktree = await asyncio.to_thread(
                self.engine.workspaces.prepare,
                repo,
                job.id,
                job.branch,
                job.worktree,
                fresh,
            )
        except WorkspaceError as exc:
            raise JobFailed(f"Job {job.id} could not start: {exc}.") from exc
        if worktree.branch != job.branch:
            await self.engine.notifier.to_job(
                job,
                Outbound(
                    text=f"Job {job.id}: branch {job.branch} was taken; "
                    f"using {worktree.branch}.",
                    job_id=job.id,
                ),
            )
        self.jobs.update(job, worktree=str(worktree.path), branch=worktree.branch)
        return worktree

    async def _initial_prompt(self, job: Job, worktree: Worktree) -> str:
        repo = self.config.repos[job.repo]
        parts = []
        if job.issue is not None:
            parts.append(f"Fix issue #{job.issue} of this repository.")
            issue = await self._issue(job)
            if issue is not None and not job.title:
                self.jobs.update(job, title=issue.title)
            if issue is not None:
                parts.append(f"Title: {issue.title}\n\n{issue.body}".strip())
                if issue.comments:
                    parts.append("Comments:\n" + "\n\n".join(issue.comments))
        else:
            parts.append(f"Task: {job.task}")
        for name in ("CLAUDE.md", "AGENTS.md"):
            path = worktree.path / name
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")[:20_000]
                parts.append(f"The repository's {name}:\n{text}")
        if repo.test:
            parts.append(f"The repository's tests run with: {repo.test}")
        parts.append(
            "Work only inside the current directory, a git worktree on branch "
            f"{job.branch}. Do not push; the bot commits, pushes and opens the pull "
            "request. When done, reply with a short summary of the change."
        )
        return "\n\n".join(parts)

    async def _issue(self, job: Job) -> Issue | None:
        forge = self.engine.forge_for(job.repo)
        if forge is None:
            return None
        try:
            return await asyncio.to_thread(forge.get_issue, job.issue)
        except ForgeError as exc:
            raise JobFailed(f"Job {job.id}: {exc}") from exc

    async def _agent(self, job: Job, worktree: Worktree, prompt: str) -> None:
        agent_config = self.config.agent
        if job.cost_usd >= agent_config.max_budget_usd:
            raise JobFailed(
                f"Job {job.id} stopped: its budget of "
                f"${agent_config.max_budget_usd:.2f} is spent."
            )

        callbacks = JobCallbacks(self.engine, job)
        request = AgentRequest(
            prompt=prompt,
            worktree=worktree.path,
            test_command=self.config.repos[job.repo].test,
            resume=job.session_id,
            job_id=job.id,
            budget_usd=agent_config.max_budget_usd - job.cost_usd,
        )
        self.engine.joblog.write(job.id, f"agent: {prompt[:2000]}")
        agent = self.engine.make_agent()
        limit = agent_config.timeout_minutes * 60
        try:
            result = await run_with_deadline(
                agent.run(request, callbacks), limit, callbacks
            )
        except TimeoutError as exc:
            self.engine.joblog.write(job.id, "agent: timed out")
            raise JobFailed(
                f"Job {job.id}: the agent ran out of time "
                f"({agent_config.timeout_minutes:g} min) and was stopped."
            ) from exc
        except AgentError as exc:
            self.engine.joblog.write(job.id, f"agent error: {exc}")
            raise JobFailed(
                f"Job {job.id}: the agent crashed. See `logs {job.id}`."
            ) from exc

        self.jobs.update(
            job,
            state=RUNNING,
            session_id=result.session_id or job.session_id,
            cost_usd=job.cost_usd + result.cost_usd,
            turns=job.turns + result.turns,
            summary=result.summary or job.summary,
        )
        self.engine.joblog.write(
            job.id,
            f"agent finished: ok={result.ok} turns={result.turns} "
            f"cost=${result.cost_usd:.4f}\n{result.summary or result.error}",
        )
        if not result.ok:
            raise JobFailed(self._agent_failure(job, result.error))

    def _agent_failure(self, job: Job, error: str) -> str:
        """What to tell the chat about an agent session that ended badly."""
        limits = self.config.agent
        if "error_max_turns" in error:
            return (
                f"Job {job.id}: the agent used all {limits.max_turns} turns "
                f"without finishing. See `logs {job.id}`."
            )
        if "error_max_budget" in error:
            return (
                f"Job {job.id} stopped: its budget of "
                f"${limits.max_budget_usd:.2f} is spent."
            )
        return f"Job {job.id}: the agent stopped with an error. See `logs {job.id}`."

    async def _verify(self, job: Job, worktree: Worktree, repo: RepoConfig) -> bool:
        """Run the tests, feeding failures back; False when the job ended here."""
        if not repo.test:
            self.jobs.update(job, test_result="not run (no test command)")
            return True

        rounds = self.config.verify.rounds
        for attempt in range(rounds + 1):
            self.jobs.update(job, state=VERIFYING)
            await self.engine.notifier.progress(job, f"running tests: {repo.test}")
            run = await run_tests(
                repo.test,
                worktree.path,
                self.config.verify.timeout_minutes * 60,
                env=self.config.agent.env,
            )
            self.engine.joblog.write(job.id, f"tests: {run.verdict}\n{run.tail}")
            self.jobs.update(job, test_result=run.verdict)
            if run.passed:
                await self.engine.notifier.progress(job, "tests pass")
                return True
            if attempt == rounds:
                break

            await self.engine.notifier.progress(
                job,
                f"tests failed (round {attempt + 1} of {rounds}); the agent is fixing",
            )
            self.jobs.update(job, state=RUNNING)
            await self._agent(
                job,
                worktree,
                f"The tests fail. `{repo.test}` printed:\n\n{run.tail}\n\n"
                "Fix the code so that they pass, then summarise the change.",
            )

        choice = await self.engine.questions.ask(
            job,
            f"The tests still fail after {rounds} round(s) of fixes. What now?",
            [DRAFT, KEEP, DISCARD],
        )
        if choice == DRAFT:
            await self._publish(job, worktree, repo, draft=True)
        elif choice == KEEP:
            await self._keep_branch(job, worktree, repo)
        else:
            await self._drop_worktree(job, repo)
            await self._finish(
                job,
                CANCELLED,
                f"Job {job.id} discarded. Nothing was pushed; "
                f"the local branch {job.branch} is kept.",
                kind="result",
            )
        return False

    async def _keep_branch(
        self, job: Job, worktree: Worktree, repo: RepoConfig
    ) -> None:
        self.jobs.update(job, state=PUBLISHING)
        sha = await self._commit_and_push(job, worktree, repo)
        await self._drop_worktree(job, repo)
        await self._finish(
            job,
            FAILED,
            f"Job {job.id}: tests still fail, so no PR. Pushed branch {job.branch} "
            f"at {sha[:10]}.",
            kind="failure",
        )

    async def _commit_and_push(
        self, job: Job, worktree: Worktree, repo: RepoConfig
    ) -> str:
        workspaces = self.engine.workspaces
        if not await asyncio.to_thread(workspaces.has_changes, worktree):
            raise JobFailed(
                f"Job {job.id}: no changes. The agent finished without changing "
                "any file, so there is nothing to publish."
            )
        title = pull_request_title(job.issue, job.title or job.task)
        message = f"{title}\n\n{job.summary}".strip()
        try:
            sha = await asyncio.to_thread(workspaces.commit, worktree, message)
            files = await asyncio.to_thread(workspaces.changed_files, worktree)
            await asyncio.to_thread(workspaces.push, worktree, repo)
        except WorkspaceError as exc:
            raise JobFailed(f"Job {job.id}: {exc}. The worktree is kept.") from exc
        self.jobs.update(job, commit=sha, files_changed=files)
        return sha

    async def _publish(
        self, job: Job, worktree: Worktree, repo: RepoConfig, draft: bool = False
    ) -> None:
        self.jobs.update(job, state=PUBLISHING)
        await self.engine.notifier.progress(job, "publishing")
        sha = await self._commit_and_push(job, worktree, repo)

        forge = self.engine.forge_for(job.repo)
        if forge is None:
            await self._done(job, repo, f"pushed branch {job.branch} at {sha[:10]}")
            return

        body = pull_request_body(
            job.issue,
            job.summary,
            repo.test,
            job.test_result if repo.test else "",
            job.duration,
            job.cost_usd,
        )
        title = pull_request_title(job.issue, job.title or job.task)
        try:
            pull = await asyncio.to_thread(
                forge.open_pull_request, job.branch, repo.base, title, body, draft
            )
        except ForgeError as exc:
            raise JobFailed(
                f"Job {job.id}: pushed {job.branch}, but opening the PR failed: {exc}"
            ) from exc
        self.jobs.update(job, pr_url=pull.url, pr_number=pull.number)
        log.info(
            "Job %s: PR %s %s",
            job.id,
            pull.url,
            "opened" if pull.created else "updated",
        )
        word = "draft PR" if draft else "PR"
        await self._done(job, repo, f"{word} {pull.url}")

    async def _done(self, job: Job, repo: RepoConfig, where: str) -> None:
        await self._drop_worktree(job, repo)
        files = (
            f"{job.files_changed} file{'s' if job.files_changed != 1 else ''} changed"
        )
        facts = [files, f"tests {job.test_result or 'not run'}"]
        facts += [format_duration(job.duration)]
        if job.cost_usd:
            facts += [f"${job.cost_usd:.2f}"]
        await self._finish(
            job, DONE, f"Job {job.id} done: {where}\n{' · '.join(facts)}", kind="result"
        )

    async def _drop_worktree(self, job: Job, repo: RepoConfig) -> None:
        """Remove the job's worktree; its branch stays."""
        await asyncio.to_thread(self.engine.workspaces.remove, repo, job.worktree)
        self.jobs.update(job, worktree="")

    async def _finish(self, job: Job, state: str, text: str, kind: str) -> None:
        error = "" if state == DONE else text
        self.jobs.update(job, state=state, error=error, finished_at=time.time())
        self.engine.storage.questions.expire(job.id)
        self.engine.joblog.write(job.id, f"{state}: {text}")
        log.info("Job %s: %s", job.id, state)
        await self.engine.notifier.to_job(
            job, Outbound(text=text, kind=kind, job_id=job.id)
        )


class JobCallbacks:
    """The agent's line to its job: progress, questions, approvals.

    It also keeps the time spent waiting for the human, which the agent's
    time limit does not count.
    """

    def __init__(self, engine: Engine, job: Job) -> None:
        self.engine = engine
        self.job = job
        self.edited = False
        self.waited = 0.0
        self._open_questions = 0
        self._waiting_since = 0.0

    async def progress(self, event: AgentEvent) -> None:
        self.engine.joblog.write(self.job.id, f"{event.kind}: {event.detail}")
        if event.kind == "started" and event.detail:
            self.engine.storage.jobs.update(self.job, session_id=event.detail)
        if event.kind == "edit" and not self.edited:
            self.edited = True
            await self.engine.notifier.progress(self.job, f"first edit: {event.detail}")

    async def ask(self, question: str, options: list[str]) -> str:
        async with self._clock_stopped():
            return await self.engine.questions.ask(self.job, question, options)

    async def approve(self, description: str) -> bool:
        async with self._clock_stopped():
            return await self.engine.questions.approve(self.job, description)

    def waited_now(self) -> float:
        """Seconds spent waiting for the human, so far."""
        if self._open_questions:
            return self.waited + time.monotonic() - self._waiting_since
        return self.waited

    @asynccontextmanager
    async def _clock_stopped(self) -> AsyncIterator[None]:
        if self._open_questions == 0:
            self._waiting_since = time.monotonic()
        self._open_questions += 1
        try:
            yield
        finally:
            self._open_questions -= 1
            if self._open_questions == 0:
                self.waited += time.monotonic() - self._waiting_since


async def run_with_deadline(coro, limit_s: float, callbacks: JobCallbacks):
    """Await `coro`, cancelling it once it has worked `limit_s` seconds.

    Time spent waiting for the human does not count.
    """
    task = asyncio.ensure_future(coro)
    started = time.monotonic()
    try:
        while True:
            worked = time.monotonic() - started - callbacks.waited_now()
            remaining = limit_s - worked
            if remaining <= 0:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise TimeoutError
            done, _ = await asyncio.wait({task}, timeout=min(remaining, 1.0))
            if done:
                return task.result()
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
