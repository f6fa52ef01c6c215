import { spawn } from 'node:child_process'
import { access, constants, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import type { Child } from './child.js'
import { cpuOf, rssOf } from './child.js'

/** The nginx binary on the PATH, if any. */
export async function findNginx (): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'nginx')
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

/**
 * nginx as a reverse proxy to the bench upstream, the way one would put it in front of a streaming
 * API: one worker, upstream keep-alive, the request body buffered, the answer not (proxy_buffering off).
 */
export async function startNginx (binary: string, upstream: URL): Promise<Child> {
  const dir = await mkdtemp(join(tmpdir(), 'ceq-bench-nginx-'))
  const port = await freePort()
  const basePath = upstream.pathname.replace(/\/+$/, '')
  await writeFile(join(dir, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend {
    server ${upstream.host};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    client_max_body_size 100m;
    client_body_buffer_size 1m;
    location /v1/ {
      proxy_pass http://backend${basePath}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer nginx-token";
      proxy_buffering off;
    }
  }
}
`)
  const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] })
  await waitForPort(port, child)
  // The worker does the proxying; the master only watches it.
  const workerPid = await nginxWorker(child.pid!)
  return {
    port,
    pid: workerPid,
    rss: () => rssOf(workerPid),
    cpu: () => cpuOf(workerPid),
    memory: async () => null,
    stop: async () => {
      await new Promise<void>((resolve) => {
        child.once('exit', () => { resolve() })
        child.kill('SIGTERM')
      })
      await rm(dir, { recursive: true, force: true })
    }
  }
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}

async function waitForPort (port: number, child: ReturnType<typeof spawn>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`)
    const open = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('nginx did not start listening')
}

async function nginxWorker (masterPid: number): Promise<number> {
  const children = await readFile(`/proc/${masterPid}/task/${masterPid}/children`, 'utf8').catch(() => '')
  const pid = Number(children.trim().split(/\s+/)[0])
  return Number.isInteger(pid) && pid > 0 ? pid : masterPid
}
