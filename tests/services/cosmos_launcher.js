#!/usr/bin/env node
// Starts @vercel/cosmosdb-server (pinned in package.json) with fixes for defects that make it
// disagree with Cosmos DB in ways the tiermem tests depend on. Every patch below is written against
// the exact pinned version; a version bump must re-check each one (tests/services/README.md).
//
//   1. Point read of a missing item answered 500 ("Cannot read properties of undefined"); real
//      Cosmos answers 404. Same for a read whose partition key does not match the item.
//   2. A request without a parsable x-ms-documentdb-partitionkey header on a document route
//      answered 500; real Cosmos answers 400.
//   3. Transactional batch read the partition key from each operation, but SDKs send it once in
//      the request header: every batch failed with 500. The header value is now copied into each
//      operation. Atomic batches are also rolled back when an operation fails (the server applied
//      the operations before the failing one), and a failed batch answers 207 like Cosmos does.
//   4. Queries sent with a partition key header returned items of every partition; they are now
//      scoped to that logical partition.
//   5. Every response carried "Connection: close", so each request paid a new TLS handshake. The
//      server's own keepAlive option is turned on, with an idle timeout longer than aiohttp's.
//   6. The query engine rejected SELECT DISTINCT (a syntax error); "SELECT DISTINCT VALUE <expr>" is
//      now evaluated without DISTINCT and de-duplicated, in one page (memory.collections() uses it).
//   7. Query evaluation was quadratic in the number of items (array spreads in generated code); it is
//      linear now, so a 100,000-item collection can be queried. Batches roll back from an undo journal.
//
// Usage: node cosmos_launcher.js --host 127.0.0.1 --port 0 [--cert server.pem --key key.pem]
// Prints one line "COSMOS_READY <json>" once listening. Exits when its parent process is gone.
"use strict";

const fs = require("fs");

const PKG = "@vercel/cosmosdb-server/lib";
const handlerModule = (name) => require(`${PKG}/handler/${name}`);

const documentOperations = require(`${PKG}/handler/_document-operations`);
const readItems = require(`${PKG}/handler/_read-items`).default;
const readJson = require(`${PKG}/json`).default;
const trueHeader = require(`${PKG}/true-header`).default;
const partitionHeader = require(`${PKG}/utils/get-partition-from-header`);

const PARTITION_HEADER = "x-ms-documentdb-partitionkey";

function notFound(res) {
  res.statusCode = 404;
  return {
    code: "NotFound",
    message: "Entity with the specified id does not exist in the system."
  };
}

function badRequest(res, message) {
  res.statusCode = 400;
  return { code: "BadRequest", message };
}

// Wraps a document-route handler: an unparsable partition key header is a 400, not a 500.
function partitionKeyErrorsAreBadRequests(handler) {
  return async (account, req, res, params) => {
    try {
      return await handler(account, req, res, params);
    } catch (err) {
      if (err && typeof err.message === "string" && err.message.startsWith(`Failed to parse ${PARTITION_HEADER}`)) {
        return badRequest(res, err.message);
      }
      throw err;
    }
  };
}

// The single partition key value of a request, or undefined when the header is absent or means
// "no partition key" ([{}]). Only single-path partition keys are supported (tiermem uses /pk).
function requestPartitionKey(req) {
  const raw = partitionHeader.default(req);
  if (!raw || raw === "[{}]") return undefined;
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`Failed to parse ${PARTITION_HEADER} headers: ${raw}`);
  }
  const value = Array.isArray(parsed) ? parsed[0] : parsed;
  if (value !== null && typeof value === "object") return undefined;
  return { value };
}

function samePartition(items, doc, partition) {
  const actual = items._getPartition(doc);
  if (partition.value === null) return actual === null || actual === undefined;
  return actual === partition.value;
}

// 1. point read: 404 for a missing item (the original dereferences undefined).
const readDocument = handlerModule("read-document");
const originalReadDocument = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  if (!collection.read()) return notFound(res);
  const partition = requestPartitionKey(req);
  if (partition === undefined && collection.read().partitionKey) {
    return badRequest(res, "The partition key supplied in x-ms-partitionkey header is missing");
  }
  const parsed = partitionHeader.parsePartitionKey(partitionHeader.default(req), params.docId);
  const doc = collection.document(params.docId, parsed).read();
  if (!doc) return notFound(res);
  return originalReadDocument(account, req, res, params);
};

// 3. transactional batch
handlerModule("batch-documents").default = async (account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) return notFound(res);
  if (!Array.isArray(body)) return badRequest(res, "Invalid request body");
  const headerPartitionKey = partitionHeader.default(req);
  const isAtomic = trueHeader(req, "x-ms-cosmos-batch-atomic");
  const continueOnError = trueHeader(req, "x-ms-cosmos-batch-continue-on-error");
  const items = collection.documents;
  // An undo journal of the keys the batch touches (copying the maps would cost O(container size) per
  // batch, which made loading 100,000 items quadratic).
  const snapshot = isAtomic
    ? { data: journal(items._data), index: journal(items._index), ridCount: items._ridCount }
    : undefined;
  try {
    const results = [];
    let failedAt = -1;
    for (let i = 0; i < body.length; i += 1) {
      if (failedAt >= 0 && !continueOnError) {
        results.push({ statusCode: 424, requestCharge: 0 });
        continue;
      }
      const input = { ...body[i] };
      if (input.partitionKey === undefined) input.partitionKey = headerPartitionKey;
      if (input.operationType !== "Create" && input.operationType !== "Upsert" && input.id === undefined && input.resourceBody) {
        input.id = input.resourceBody.id;
      }
      let result;
      switch (input.operationType) {
        case "Create": result = documentOperations.createOperation(collection, input); break;
        case "Upsert": result = documentOperations.upsertOperation(collection, input); break;
        case "Read": result = documentOperations.readOperation(collection, input); break;
        case "Delete": result = documentOperations.deleteOperation(collection, input); break;
        case "Replace": result = documentOperations.replaceOperation(collection, input); break;
        default:
          if (snapshot) restore(items, snapshot);
          return badRequest(res, `Operation type '${input.operationType}' is not supported in Batch.`);
      }
      if (result.statusCode >= 400) {
        if (failedAt < 0) failedAt = i;
        results.push({ statusCode: result.statusCode, requestCharge: 0 });
      } else {
        results.push({
          statusCode: result.statusCode,
          requestCharge: 1,
          eTag: result.body ? result.body._etag : undefined,
          resourceBody: result.body
        });
      }
    }
    if (failedAt >= 0 && snapshot) {
      restore(items, snapshot);
      // Operations before the failing one were rolled back: report them as failed dependencies.
      for (let i = 0; i < failedAt; i += 1) results[i] = { statusCode: 424, requestCharge: 0 };
    }
    if (failedAt >= 0) res.statusCode = 207;
    return results;
  } finally {
    if (snapshot) {
      snapshot.data.release();
      snapshot.index.release();
    }
  }
};

// Records the first previous value (or absence) of every key set or deleted, so it can be undone.
function journal(map) {
  const saved = new Map();
  const { set, delete: remove } = Map.prototype;
  const remember = (key) => {
    if (!saved.has(key)) saved.set(key, map.has(key) ? { value: map.get(key) } : null);
  };
  map.set = function journaledSet(key, value) {
    remember(key);
    return set.call(this, key, value);
  };
  map.delete = function journaledDelete(key) {
    remember(key);
    return remove.call(this, key);
  };
  return {
    restore() {
      for (const [key, entry] of saved) {
        if (entry === null) remove.call(map, key);
        else set.call(map, key, entry.value);
      }
    },
    release() {
      delete map.set;
      delete map.delete;
    }
  };
}

function restore(items, snapshot) {
  snapshot.data.restore();
  snapshot.index.restore();
  items._ridCount = snapshot.ridCount;
}

// 4. queries scoped to the request's partition key; 6. SELECT DISTINCT VALUE
const cosmosdbQuery = require("@zeit/cosmosdb-query").default;
const DISTINCT_VALUE = /^\s*SELECT\s+DISTINCT\s+VALUE\s+/i;
const queryDocuments = handlerModule("query-documents");
queryDocuments.default = async (account, req, res, params) => {
  const partition = requestPartitionKey(req);
  return readItems(req, res, "Documents", async ({ continuation, maxItemCount }) => {
    const body = await readJson(req);
    if (!body.query) return badRequest(res, "missing query");
    const collection = account.database(params.dbId).collection(params.collId);
    const items = collection.documents;
    const parent = collection.read();
    if (!parent) return null;
    if (partition === undefined && !trueHeader(req, "x-ms-documentdb-query-enablecrosspartition")) {
      const paths = (parent.partitionKey || {}).paths || [];
      if (paths.length && !cosmosdbQuery(body.query).containsPartitionKeys(paths)) {
        return badRequest(res, "missing partition keys");
      }
    }
    let data = [...items._data.values()].map((item) => item.read());
    if (partition !== undefined) data = data.filter((doc) => samePartition(items, doc, partition));
    // The query engine has no DISTINCT: "SELECT DISTINCT VALUE <expr> ..." runs without it and is
    // de-duplicated here, answered in one page (no continuation).
    const distinct = DISTINCT_VALUE.exec(body.query);
    const query = distinct ? `SELECT VALUE ${body.query.slice(distinct[0].length)}` : body.query;
    const compositeIndexes = (parent.indexingPolicy ? parent.indexingPolicy.compositeIndexes : null) || [];
    try {
      const out = items._getQuery(query).exec(data, {
        parameters: body.parameters,
        udf: items._userDefinedFunctions(),
        maxItemCount: distinct ? undefined : maxItemCount,
        continuation: distinct ? undefined : continuation,
        compositeIndexes
      });
      if (distinct) {
        const seen = new Set();
        out.result = out.result.filter((value) => {
          const key = JSON.stringify(value);
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
        out.continuation = null;
      }
      return out;
    } catch (err) {
      // The original answers 400 for both syntax and evaluation errors of a query.
      return badRequest(res, err.message);
    }
  });
};

// 7. linear-time query evaluation. The query compiler emits "$c.reduce(($, c) => ... [...$, x] ...)", which
// copies the accumulator for every item (quadratic: 8 s for 20,000 items, minutes for 100,000), and
// helpers.stripUndefined does the same on result arrays. Appends become pushes; results are the same.
const queryHelpers = require("@zeit/cosmosdb-query/lib/helpers");
const queryExecutor = require("@zeit/cosmosdb-query/lib/executor");
queryHelpers.stripUndefined = function stripUndefined(obj) {
  if (Array.isArray(obj)) {
    const out = [];
    for (const value of obj) if (typeof value !== "undefined") out.push(stripUndefined(value));
    return out;
  }
  if (obj && typeof obj === "object") {
    const out = {};
    for (const [key, value] of Object.entries(obj)) if (typeof value !== "undefined") out[key] = stripUndefined(value);
    return out;
  }
  return obj;
};
const APPEND = "[...$, ";
function linearAppends(code) {
  let out = "";
  let from = 0;
  for (;;) {
    const at = code.indexOf(APPEND, from);
    if (at < 0) return out + code.slice(from);
    let depth = 0;
    let end = at;
    let quote = null;
    for (; end < code.length; end += 1) {
      const ch = code[end];
      if (quote) {
        if (ch === "\\") end += 1;
        else if (ch === quote) quote = null;
      } else if (ch === '"' || ch === "'" || ch === "`") {
        quote = ch;
      } else if ("[({".includes(ch)) {
        depth += 1;
      } else if ("])}".includes(ch)) {
        depth -= 1;
        if (depth === 0) break;
      }
    }
    out += `${code.slice(from, at)}($.push(${linearAppends(code.slice(at + APPEND.length, end))}), $)`;
    from = end + 1;
  }
}
const originalExecute = queryExecutor.default;
const rewrittenCode = new Map();
queryExecutor.default = (collection, options) => {
  let code = rewrittenCode.get(options.code);
  if (code === undefined) {
    code = linearAppends(options.code);
    rewrittenCode.set(options.code, code);
  }
  return originalExecute(collection, { ...options, code });
};

// 2. every document-route handler: unparsable partition key header -> 400
for (const name of ["read-document", "replace-document", "delete-document", "upsert-document", "patch-document", "batch-documents"]) {
  const mod = handlerModule(name);
  mod.default = partitionKeyErrorsAreBadRequests(mod.default);
}

// The routes table captures the handler functions when it is first required, so the server is
// loaded only now, after the patches above.
const { createHttpsServer } = require(PKG);

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === "--host") args.host = value;
    else if (key === "--port") args.port = parseInt(value, 10);
    else if (key === "--cert") args.cert = value;
    else if (key === "--key") args.key = value;
    else throw new Error(`unknown argument ${key}`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const options = { keepAlive: true };
if (args.cert) options.cert = fs.readFileSync(args.cert);
if (args.key) options.key = fs.readFileSync(args.key);

const server = createHttpsServer(options);
// aiohttp keeps idle connections for 15 s; a longer server idle timeout avoids the race where the
// server closes a connection the client is about to reuse.
server.keepAliveTimeout = 120000;
server.headersTimeout = 121000;
server.listen(args.port, args.host, () => {
  const { port } = server.address();
  process.stdout.write(`COSMOS_READY ${JSON.stringify({ host: args.host, port })}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

// Backstop against orphans: if the Python process that started us dies without stopping us
// (SIGKILL), we are re-parented and exit.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) shutdown();
}, 1000).unref();
