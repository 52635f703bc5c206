// sbx-executor's JavaScript runner: reads one job (JSON) from stdin, evaluates the code as
// the body of an async function with CommonJS-style module/exports/require, finds handler
// (top level or exported), awaits it and writes one result line to fd 3.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

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

async function main() {
	const job = JSON.parse(fs.readFileSync(0, 'utf8'));
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
		if (Buffer.byteLength(text, 'utf8') > cap)
			writeResult(null, '{"ok":true,"truncated":true}');
		else
			writeResult(null, '{"ok":true,"value":' + text + '}');
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
		writeResult({ ok: false, value: null, error_type: type, error_message: msg });
		finish(1);
	}
}

process.on('unhandledRejection', (e) => {
	const msg = e instanceof Error ? e.message : String(e);
	process.stderr.write('unhandled rejection: ' + (e && e.stack ? e.stack : msg) + '\n');
});
main();
