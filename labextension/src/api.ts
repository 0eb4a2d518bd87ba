/**
 * REST client of the bento_nb Jupyter server extension (`<base_url>/bento/api/...`).
 *
 * Every REST call of the extension is a function of this module, and every one goes through
 * `requestAPI()`, built on JupyterLab's ServerConnection, which adds the Jupyter token or
 * XSRF header and the base URL.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One bundle of the store (`GET api/bundles`); `error` set when it cannot be read. */
export interface IBundle {
  tag: string;
  name: string;
  version: string;
  path: string;
  created_at?: string;
  size?: number;
  apis?: { name: string }[];
  error?: string;
}

/** One running bento_nb server (`GET api/servers`). */
export interface IServer {
  pid: number;
  host: string;
  port: number;
  /** null when the record's address is not an http(s) URL */
  url: string | null;
  tag: string | null;
  name: string;
  apis?: string[];
  started_at?: string | number;
  proxy_url: string | null;
  status: string;
}

/** A containerize job (`GET api/jobs/<id>`). */
export interface IJob {
  id: string;
  tag: string;
  image: string | null;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  error: { type: string; message: string; command?: string } | null;
  result: { image?: string; image_id?: string; seconds?: number } | null;
  log?: string[];
  log_start?: number;
  log_total: number;
}

/**
 * Call `bento/api/<endPoint>` and return its JSON. Non-2xx answers throw a
 * ServerConnection.ResponseError carrying the server's error message.
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'bento', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, errorMessage(data, text));
  }
  return data as T;
}

/** The message of an error answer: `{"error": {"message": ...}}`, `{"message": ...}`, or
 * the text itself. */
function errorMessage(data: unknown, text: string): string {
  if (data !== null && typeof data === 'object') {
    const { error, message } = data as { error?: { message?: unknown }; message?: unknown };
    if (typeof error?.message === 'string') {
      return error.message;
    }
    if (typeof message === 'string') {
      return message;
    }
  }
  return text;
}

export async function listBundles(): Promise<IBundle[]> {
  return (await requestAPI<{ bundles: IBundle[] }>('bundles')).bundles;
}

export async function listServers(): Promise<IServer[]> {
  return (await requestAPI<{ servers: IServer[] }>('servers')).servers;
}

export async function deleteBundle(name: string, version: string): Promise<void> {
  const path = `bundles/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;
  await requestAPI(path, { method: 'DELETE' });
}

export async function containerize(tag: string, image: string | null): Promise<IJob> {
  return requestAPI<IJob>('containerize', {
    method: 'POST',
    body: JSON.stringify({ tag, image: image || null })
  });
}

export async function listJobs(): Promise<IJob[]> {
  return (await requestAPI<{ jobs: IJob[] }>('jobs')).jobs;
}

export async function getJob(id: string, since = 0): Promise<IJob> {
  return requestAPI<IJob>(`jobs/${encodeURIComponent(id)}?since=${since}`);
}
