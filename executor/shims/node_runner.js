// sbx-executor's JavaScript runner: reads one job (JSON) from stdin, evaluates the code as
// the body of an async function with CommonJS-style module/exports/require, finds handler
// (top level or exported), awaits it and writes one result line to fd 3.
// With --prespawned it was started ahead of time with the clean base environment and blocks
// on stdin (a pipe) until the executor hands it a job: it then applies the job's env and
// working directory and acknowledges with one byte on fd 4 before any user code is loaded.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const prespawned = process.argv[2] === '--prespawned';
if (prespawned)
	process.argv.splice(2, 1);	// the handler sees the argv of a cold start

function writeResult(obj, raw) {
	const line = raw !== undefined ? raw : JSON.stringify(obj);
	try {
		fs.writeSync(3, line + '\n');
	} catch (e) {
		// the executor is gone: nothing to report to
	}
}

function finish(code) {
	// stdout and stderr are synchronous for pipes on Linux: nothing is lost by exiting now
	process.exit(code);
}

function readJob() {
	const job = JSON.parse(fs.readFileSync(0, 'utf8'));
	if (prespawned) {
		for (const k of Object.keys(process.env))
			if (!Object.prototype.hasOwnProperty.call(job.env, k))
				delete process.env[k];
		Object.assign(process.env, job.env);
		process.chdir(job.cwd);
		fs.writeSync(4, 'J');
		fs.closeSync(4);
	}
	return job;
}

function cpuMs(u) {
	return (u.user + u.system) / 1000;
}

async function main() {
	let job;
	try {
		job = readJob();
	} catch (e) {
		// prespawned: nothing was acknowledged, so the executor cold-starts the execution
		process.stderr.write('node_runner: cannot read the job: ' + e + '\n');
		process.exit(70);
	}
	// the CPU node spent starting (and, prespawned, waiting): not the handler's
	const startupCpu = cpuMs(process.cpuUsage());
	const cap = job.max_output;
	const started = Date.now();
	const ctx = Object.assign({}, job.context);
	ctx.getRemainingTimeInMillis = () => Math.max(0, job.context.timeout_ms - (Date.now() - started));
	const filename = path.join(process.cwd(), 'handler.js');
	const mod = { exports: {} };
	const req = Module.createRequire(filename);
	const AsyncFunction = (async () => {}).constructor;
	let handler;
	try {
		const body = job.code + '\n;return (typeof handler !== "undefined") ? handler : undefined;';
		const fn = new AsyncFunction('module', 'exports', 'require', '__filename', '__dirname', body);
		const top = await fn(mod, mod.exports, req, filename, path.dirname(filename));
		handler = top;
		if (typeof handler !== 'function') {
			if (typeof mod.exports === 'function')
				handler = mod.exports;
			else if (mod.exports && typeof mod.exports.handler === 'function')
				handler = mod.exports.handler;
		}
		if (typeof handler !== 'function')
			throw new ReferenceError('handler is not defined: define function handler(event, context) or export it');
		let value = await handler(job.event, ctx);
		if (value === undefined)
			value = null;
		const text = JSON.stringify(value);
		if (text === undefined)
			throw new TypeError('the return value is not JSON serialisable');
		const head = '{"ok":true,"startup_cpu_ms":' + startupCpu + ',';
		if (Buffer.byteLength(text, 'utf8') > cap)
			writeResult(null, head + '"truncated":true}');
		else
			writeResult(null, head + '"value":' + text + '}');
		finish(0);
	} catch (e) {
		const isErr = e instanceof Error;
		const type = isErr ? (e.name || 'Error') : 'Error';
		let msg = isErr ? String(e.message) : String(e);
		if (msg.length > 4096)
			msg = msg.slice(0, 4096) + '...';
		try {
			process.stderr.write((isErr && e.stack ? e.stack : type + ': ' + msg) + '\n');
		} catch (e2) {
			// stderr closed
		}
		writeResult({ ok: false, value: null, error_type: type, error_message: msg,
			startup_cpu_ms: startupCpu });
		finish(1);
	}
}

process.on('unhandledRejection', (e) => {
	const msg = e instanceof Error ? e.message : String(e);
	process.stderr.write('unhandled rejection: ' + (e && e.stack ? e.stack : msg) + '\n');
});
main();
