// Ship a few log lines with a real npm client, unmodified, to a flightlog server.
// usage: node ship.js winston-loki|otlp-json URL BUILD_ID
'use strict'

const [mode, url, buildId] = process.argv.slice(2)

async function winstonLoki () {
  const winston = require('winston')
  const LokiTransport = require('winston-loki')
  const transport = new LokiTransport({
    host: url,
    labels: { app: 'gateway', host: 'edge-2', build_id: buildId },
    json: false, // protobuf + snappy
    batching: true,
    interval: 0.2,
    onConnectionError: (err) => { console.error('winston-loki:', err); process.exitCode = 1 }
  })
  const logger = winston.createLogger({ level: 'debug', transports: [transport] })
  logger.warn('upstream slow', { upstream: 'auth', latency_ms: 950 })
  logger.info('upstream recovered')
  await transport.flush()
  transport.close && transport.close()
}

async function otlpJson () {
  const api = require('@opentelemetry/api')
  const { SeverityNumber } = require('@opentelemetry/api-logs')
  const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs')
  const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http')
  const { resourceFromAttributes } = require('@opentelemetry/resources')
  const exporter = new OTLPLogExporter({ url: `${url}/v1/logs`, compression: 'gzip' })
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'frontend', 'k8s.pod.name': 'frontend-6d9f-x2', 'build.id': buildId }),
    processors: [new BatchLogRecordProcessor({ exporter, scheduledDelayMillis: 100 })]
  })
  const logger = provider.getLogger('web', '1.2.3')
  const spanContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 }
  const context = api.trace.setSpanContext(api.context.active(), spanContext)
  logger.emit({
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    body: 'render failed',
    attributes: { 'http.route': '/cart', 'deployment.id': 'dep-9' },
    context
  })
  logger.emit({ severityNumber: SeverityNumber.DEBUG, body: { event: 'hydrate', ms: 12 } })
  await provider.forceFlush()
  await provider.shutdown()
}

const modes = { 'winston-loki': winstonLoki, 'otlp-json': otlpJson }
if (!modes[mode]) {
  console.error(`unknown mode ${mode}; choose from ${Object.keys(modes).join(', ')}`)
  process.exit(2)
}
modes[mode]().catch((err) => { console.error(err); process.exit(1) })
