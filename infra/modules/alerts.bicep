// Alerts. Metric alerts watch the Azure resources; scheduled query (log) alerts watch tiermem's own
// OpenTelemetry signals in Application Insights:
//   - hot-tier hit rate from the counter tiermem.operations (customMetrics, attributes in customDimensions);
//   - p95 latency of the client-method spans tiermem.get / tiermem.mget (dependencies table). The Azure
//     Monitor exporter sends histograms (tiermem.operation.duration) as sum/count/min/max only, so a true
//     percentile comes from the spans.
// Each alert names the runbook to open in its description.

@description('Azure region for the scheduled query rules (metric alerts are global).')
param location string

@description('Tags applied to every alert.')
param tags object = {}

@description('Prefix for alert names.')
param namePrefix string

@description('Resource ID of the action group the alerts notify.')
param actionGroupId string

@description('Resource ID of the Azure Managed Redis cluster.')
param redisId string

@description('Resource ID of the Cosmos DB account.')
param cosmosId string

@description('Resource ID of the blob service (storageAccount/blobServices/default).')
param blobServiceId string

@description('Resource ID of the Application Insights component that receives tiermem telemetry.')
param appInsightsId string

@description('Alert when Redis used memory exceeds this percentage.')
@minValue(1)
@maxValue(100)
param redisUsedMemoryPercentThreshold int = 85

@description('Alert when Redis evicts more than this many keys in the window.')
@minValue(0)
param redisEvictedKeysThreshold int = 0

@description('Alert when Cosmos DB returns more than this many 429 responses in the window.')
@minValue(0)
param cosmos429Threshold int = 10

@description('Alert when Blob Storage throttles more than this many transactions in the window.')
@minValue(0)
param blobThrottledThreshold int = 0

@description('Alert when the hot-tier hit rate (percent) falls below this value.')
@minValue(0)
@maxValue(100)
param hitRatePercentThreshold int = 50

@description('Minimum hot-tier lookups in the window before the hit-rate alert is evaluated (avoids alerting on idle periods).')
@minValue(1)
param hitRateMinLookups int = 200

@description('Alert when the p95 duration of tiermem.get or tiermem.mget spans exceeds this many milliseconds.')
@minValue(1)
param p95LatencyMsThreshold int = 250

@description('Minimum spans in the window before the latency alert is evaluated.')
@minValue(1)
param latencyMinSamples int = 50

var actions = [
  {
    actionGroupId: actionGroupId
  }
]

resource redisMemory 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-redis-used-memory'
  location: 'global'
  tags: tags
  properties: {
    description: 'Redis used memory above ${redisUsedMemoryPercentThreshold}%. Runbook: runbooks/redis-out-of-memory.md'
    severity: 2
    enabled: true
    scopes: [
      redisId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'usedmemorypercentage'
          metricNamespace: 'Microsoft.Cache/redisEnterprise'
          metricName: 'usedmemorypercentage'
          operator: 'GreaterThan'
          threshold: redisUsedMemoryPercentThreshold
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: actions
  }
}

resource redisEvictions 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-redis-evictions'
  location: 'global'
  tags: tags
  properties: {
    description: 'Redis is evicting keys. Runbook: runbooks/redis-out-of-memory.md'
    severity: 3
    enabled: true
    scopes: [
      redisId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'evictedkeys'
          metricNamespace: 'Microsoft.Cache/redisEnterprise'
          metricName: 'evictedkeys'
          operator: 'GreaterThan'
          threshold: redisEvictedKeysThreshold
          timeAggregation: 'Total'
        }
      ]
    }
    actions: actions
  }
}

resource cosmosThrottled 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-cosmos-429'
  location: 'global'
  tags: tags
  properties: {
    description: 'Cosmos DB is rate limiting requests (429). Runbook: runbooks/cosmos-429-hot-partitions.md'
    severity: 2
    enabled: true
    scopes: [
      cosmosId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'TotalRequests429'
          metricNamespace: 'Microsoft.DocumentDB/databaseAccounts'
          metricName: 'TotalRequests'
          dimensions: [
            {
              name: 'StatusCode'
              operator: 'Include'
              values: [
                '429'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: cosmos429Threshold
          timeAggregation: 'Count'
        }
      ]
    }
    actions: actions
  }
}

resource blobThrottled 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-blob-throttling'
  location: 'global'
  tags: tags
  properties: {
    description: 'Blob Storage is throttling requests (503 ServerBusy / throttling errors). Runbook: runbooks/blob-throttling.md'
    severity: 2
    enabled: true
    scopes: [
      blobServiceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'ThrottledTransactions'
          metricNamespace: 'Microsoft.Storage/storageAccounts/blobServices'
          metricName: 'Transactions'
          dimensions: [
            {
              name: 'ResponseType'
              operator: 'Include'
              values: [
                'ServerBusyError'
                'ClientThrottlingError'
                'ClientAccountRequestThrottlingError'
                'ClientAccountBandwidthThrottlingError'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: blobThrottledThreshold
          timeAggregation: 'Total'
        }
      ]
    }
    actions: actions
  }
}

// The log alerts return one row per breach and fire on "more than 0 rows" (timeAggregation Count): the
// threshold lives in the query ({1}), which keeps the rule independent of how the alert engine bins time.

// Hot-tier hit rate over the window. Counters arrive as delta rows; valueSum is the count in each row.
var hitRateQuery = '''
customMetrics
| where name == "tiermem.operations"
| where tostring(customDimensions["tiermem.tier"]) == "hot"
| extend outcome = tostring(customDimensions["tiermem.outcome"])
| where outcome in ("hit", "miss")
| summarize Hits = sumif(valueSum, outcome == "hit"), Lookups = sum(valueSum)
| where Lookups >= {0}
| extend HitRatePercent = 100.0 * Hits / Lookups
| where HitRatePercent < {1}
'''

var latencyQuery = '''
dependencies
| where name in ("tiermem.get", "tiermem.mget")
| summarize P95Ms = percentile(duration, 95), Samples = count() by Operation = name
| where Samples >= {0}
| where P95Ms > {1}
'''

resource hitRate 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-hot-hit-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix} hot-tier hit rate below ${hitRatePercentThreshold}%'
    description: 'tiermem.operations: hot hits / (hits + misses) below threshold. Runbooks: runbooks/redis-out-of-memory.md, runbooks/tier-outage-degraded-mode.md'
    severity: 3
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: format(hitRateQuery, hitRateMinLookups, hitRatePercentThreshold)
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

resource p95Latency 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-p95-latency'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix} p95 read latency above ${p95LatencyMsThreshold} ms'
    description: 'p95 duration of tiermem.get / tiermem.mget spans above threshold. Runbooks: runbooks/connection-pool-exhaustion.md, runbooks/cosmos-429-hot-partitions.md'
    severity: 3
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: format(latencyQuery, latencyMinSamples, p95LatencyMsThreshold)
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'Operation'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}

// A tier's circuit breaker is open (tiermem.circuit.state == 2): that tier is being skipped.
var circuitOpenQuery = '''
customMetrics
| where name == "tiermem.circuit.state"
| extend Tier = tostring(customDimensions["tiermem.tier"])
| summarize State = max(valueMax) by Tier
| where State >= 2
'''

resource circuitOpen 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-circuit-open'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix} tier circuit breaker open'
    description: 'tiermem.circuit.state reached 2 (open) for a tier. Runbook: runbooks/tier-outage-degraded-mode.md'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT10M'
    autoMitigate: true
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: circuitOpenQuery
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'Tier'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}
