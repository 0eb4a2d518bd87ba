/**
 * The "Containerize jobs" section of the Bento panel. `start()` submits a job and shows a
 * JupyterLab notification ("Building …", turned into the outcome when the job ends); its
 * row is scrolled into view and highlighted. A Poll follows the jobs still queued or
 * running (standing by when there is none) and reads only the log lines it has not seen.
 */
import { Notification } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';

import { IJob, containerize, getJob, listJobs } from './api';
import { h } from './dom';

const JOB_POLL_MS = 1000;
const JOB_LOG_LINES = 200;
const SUCCESS_CLOSE_MS = 8000;

function isPending(job: IJob): boolean {
  return job.status === 'queued' || job.status === 'running';
}

/** The notification text for a job: in progress, built, or failed. */
export function jobMessage(job: IJob): string {
  if (isPending(job)) {
    return job.image ? `Building ${job.image} from ${job.tag} …` : `Building ${job.tag} …`;
  }
  if (job.status === 'succeeded') {
    const image = job.result?.image ?? job.image;
    return image ? `Built ${job.tag} as ${image}` : `Built ${job.tag}`;
  }
  // the toast that said "Building <tag> …" turns into this one: the message gets the room
  return `Containerize failed: ${job.error?.message ?? 'unknown error'}`;
}

export class JobsSection {
  /** The section's content (one row per job, newest first, or a hint). */
  readonly node = h('div', { class: 'jp-BentoPanel-jobs' });

  /** ``onBuilt`` runs when a job succeeds (the panel reloads its lists then). */
  constructor(private readonly _onBuilt: () => void) {
    this._poll = new Poll({
      factory: () => this._update(),
      frequency: { interval: JOB_POLL_MS, backoff: true, max: 10 * JOB_POLL_MS },
      standby: () => !this._pending(),
      name: 'bento-nb:jobs'
    });
    this._render();
  }

  dispose(): void {
    this._poll.dispose();
  }

  /** Load the jobs the server extension knows (once; their logs are not fetched). */
  async load(): Promise<void> {
    if (this._loaded) {
      return;
    }
    for (const job of (await listJobs()).reverse()) {
      this._jobs.set(job.id, { ...job, log: [], log_total: 0 });
    }
    this._loaded = true;
    this._render();
    void this._poll.refresh();
  }

  /** Submit a containerize job for ``tag``; throws what the server answered on refusal. */
  async start(tag: string, image: string | null): Promise<void> {
    const job = await containerize(tag, image);
    this._notes.set(
      job.id,
      Notification.emit(jobMessage(job), 'in-progress', { autoClose: false })
    );
    this._highlight = job.id;
    this._jobs.set(job.id, { ...job, log: [...(job.log ?? [])] });
    this._settle(job);
    this._render();
    this.node
      .querySelector(`[data-job="${CSS.escape(job.id)}"]`)
      ?.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    void this._poll.refresh();
  }

  private _pending(): boolean {
    return [...this._jobs.values()].some(isPending);
  }

  /** One poll: the new log lines and status of every pending job. */
  private async _update(): Promise<void> {
    let built = false;
    for (const job of [...this._jobs.values()].filter(isPending)) {
      try {
        const update = await getJob(job.id, job.log_total);
        const log = [...(job.log ?? []), ...(update.log ?? [])].slice(-JOB_LOG_LINES);
        this._jobs.set(job.id, { ...update, log });
        this._settle(update);
        built = built || update.status === 'succeeded';
      } catch {
        // the server may restart; keep polling until it answers or the job ends
      }
    }
    this._render();
    if (built) {
      this._onBuilt();
    }
  }

  /** Turn the "Building …" notification of a job that has ended into its outcome. */
  private _settle(job: IJob): void {
    const id = this._notes.get(job.id);
    if (id === undefined || isPending(job)) {
      return;
    }
    this._notes.delete(job.id);
    const ok = job.status === 'succeeded';
    Notification.update({
      id,
      message: jobMessage(job),
      type: ok ? 'success' : 'error',
      autoClose: ok ? SUCCESS_CLOSE_MS : false
    });
  }

  private _render(): void {
    const node = this.node;
    node.replaceChildren();
    if (!this._jobs.size) {
      node.append(
        h(
          'p',
          { class: 'jp-BentoPanel-empty' },
          'Containerize a bundle to build a Docker image; its progress shows here.'
        )
      );
      return;
    }
    for (const job of [...this._jobs.values()].reverse()) {
      const title = `${job.tag}` + (job.image ? ` → ${job.image}` : '');
      const log = h('pre', { class: 'jp-BentoPanel-log' }, (job.log ?? []).join('\n'));
      const seconds = job.result?.seconds;
      node.append(
        h(
          'div',
          {
            class:
              'jp-BentoPanel-item jp-BentoPanel-job' +
              (job.id === this._highlight ? ' jp-mod-highlighted' : ''),
            'data-job': job.id,
            'data-status': job.status
          },
          h(
            'div',
            { class: 'jp-BentoPanel-row' },
            h('span', { class: 'jp-BentoPanel-name', title }, title),
            h('span', { class: 'jp-BentoPanel-pill', 'data-status': job.status }, job.status)
          ),
          job.error
            ? h('div', { class: 'jp-BentoPanel-message jp-mod-error' }, job.error.message)
            : null,
          job.result?.image
            ? h(
                'div',
                { class: 'jp-BentoPanel-row jp-BentoPanel-meta' },
                `image ${job.result.image}` +
                  (seconds !== undefined ? ` in ${seconds.toFixed(1)} s` : '')
              )
            : null,
          job.log?.length ? log : null
        )
      );
      log.scrollTop = log.scrollHeight;
    }
  }

  private readonly _poll: Poll;
  private readonly _jobs = new Map<string, IJob>();
  /** Job id -> id of its in-progress notification, for the jobs started here. */
  private readonly _notes = new Map<string, string>();
  /** The job started last from this panel: its row is highlighted. */
  private _highlight: string | null = null;
  private _loaded = false;
}
