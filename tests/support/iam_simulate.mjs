// Offline IAM evaluation for the tests: reads a JSON list of simulations on stdin (the
// shape of @cloud-copilot/iam-simulate's `Simulation`, plus an optional "unchecked": true),
// writes a JSON list of answers:
// {"decision": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//  "ignored": [context keys the simulator dropped as unknown for the action], "errors": ...}.
// "unchecked" runs the simulator's unvalidated engine, which keeps every context key as
// given: 0.1.173 drops colon-form variable keys such as kms:EncryptionContext:aws:s3:arn.
// No network: the package evaluates the policies in this process.
import { loadPolicy } from '@cloud-copilot/iam-policy'
import { runSimulation } from '@cloud-copilot/iam-simulate'
// The unvalidated engine's parts, by file (the package's runUnsafeSimulation loads the
// resource policy without a name, which its analysis then dereferences).
const engine = '../../node_modules/@cloud-copilot/iam-simulate/dist/esm/'
const { authorize } = await import(engine + 'core_engine/CoreSimulatorEngine.js')
const { AwsRequestImpl } = await import(engine + 'request/request.js')
const { RequestContextImpl } = await import(engine + 'requestContext.js')
const { DiscoveryContextKeyConstraints } = await import(
  engine + 'context_keys/discoveryContextKeyConstraints.js'
)

function runUnchecked(simulation) {
  const { request } = simulation
  const analysis = authorize({
    request: new AwsRequestImpl(
      request.principal,
      { resource: request.resource.resource, accountId: request.resource.accountId },
      request.action,
      new RequestContextImpl(request.contextVariables)
    ),
    sessionPolicy: undefined,
    identityPolicies: simulation.identityPolicies.map((p) =>
      loadPolicy(p.policy, { name: p.name })
    ),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: simulation.resourcePolicy
      ? loadPolicy(simulation.resourcePolicy, { name: 'resource' })
      : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([])
    },
    serviceSettings: { s3: {} }
  })
  return analysis.result
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const out = []
for (const { unchecked, ...simulation } of simulations) {
  if (unchecked) {
    out.push({ decision: runUnchecked(simulation), ignored: [] })
    continue
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    out.push({ decision: 'Error', errors: response.errors })
  } else if (response.resultType === 'single') {
    out.push({
      decision: response.overallResult,
      ignored: response.result.ignoredContextKeys ?? []
    })
  } else {
    const ignored = response.results.flatMap((r) => r.ignoredContextKeys ?? [])
    out.push({ decision: response.overallResult, ignored: [...new Set(ignored)] })
  }
}
process.stdout.write(JSON.stringify(out))
