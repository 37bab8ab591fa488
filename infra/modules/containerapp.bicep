// The tiermem HTTP service (`tiermem serve`) on Azure Container Apps.
// - Runs as the user-assigned identity; AZURE_CLIENT_ID tells the SDKs which identity to use.
// - Every setting is an environment variable named exactly as tiermem's settings read it.
// - APPLICATIONINSIGHTS_CONNECTION_STRING is read here from the Application Insights resource and set as a
//   plain env var: it only says where telemetry goes. With local auth off (the default) it cannot ingest
//   anything by itself: the service exports with its managed identity (TIERMEM_SERVICE_MONITOR_ENTRA).
//   It is deliberately not a deployment output.
// - The sweep job runs as its own identity with only blob access to the cold-tier container, and gets
//   only the cold-tier settings.
// - The managed environment sends console and system logs to Log Analytics through a diagnostic setting
//   (destination azure-monitor), so no workspace shared key is ever read by this template.

@description('Name of the Container Apps managed environment.')
param environmentName string

@description('Name of the Container App.')
param appName string

@description('Azure region for the environment and the app.')
param location string

@description('Tags applied to the environment and the app.')
param tags object = {}

@description('Container image to run, e.g. myregistry.azurecr.io/tiermem:1.2.3.')
param image string

@description('Registry server to pull the image from with the managed identity (needs AcrPull); empty for a public image.')
param registryServer string = ''

@description('Resource ID of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client ID of the user-assigned managed identity (AZURE_CLIENT_ID).')
param identityClientId string

@description('Resource ID of the Log Analytics workspace that receives the environment logs.')
param workspaceId string

@description('Name of the Application Insights component whose connection string the app exports to.')
param appInsightsName string

@description('Subnet for the environment (VNet integration, needed to reach private endpoints); empty for none.')
param infrastructureSubnetId string = ''

@description('Expose the service outside the environment (external ingress). Requests still need an Entra token.')
param externalIngress bool = true

@description('vCPU per replica, as a string (Container Apps accepts 0.25 steps, e.g. 0.5).')
param cpu string = '0.5'

@description('Memory per replica, e.g. 1Gi (must match the vCPU ratio of Container Apps).')
param memory string = '1Gi'

@description('Minimum replicas; 1 or more keeps the service warm (no cold start).')
@minValue(0)
param minReplicas int = 1

@description('Maximum replicas.')
@minValue(1)
param maxReplicas int = 5

@description('Concurrent HTTP requests per replica before the scaler adds one.')
@minValue(1)
param concurrentRequestsPerReplica int = 50

@description('Value of TIERMEM_REDIS_URL, e.g. rediss://<host>:10000.')
param redisUrl string

@description('Value of TIERMEM_REDIS_CLUSTER: true when the Redis database uses the OSS cluster policy.')
param redisCluster bool

@description('Value of TIERMEM_COSMOS_ENDPOINT.')
param cosmosEndpoint string

@description('Value of TIERMEM_COSMOS_DATABASE.')
param cosmosDatabase string

@description('Value of TIERMEM_COSMOS_CONTAINER.')
param cosmosContainer string

@description('Value of TIERMEM_BLOB_ACCOUNT_URL.')
param blobAccountUrl string

@description('Value of TIERMEM_BLOB_CONTAINER.')
param blobContainer string

@description('Value of TIERMEM_KEY_VAULT_URL.')
param keyVaultUrl string

@description('Value of TIERMEM_REDIS_PASSWORD_SECRET: name of a Key Vault secret, only when Entra auth for Redis is impossible; empty to leave the variable unset.')
param redisPasswordSecretName string = ''

@description('Value of TIERMEM_AUTH_TENANT_ID: tenant that issues the tokens the service accepts.')
param authTenantId string

@description('Value of TIERMEM_AUTH_AUDIENCE: the service app registration (app ID URI or client ID).')
param authAudience string

@description('Value of TIERMEM_HOT_TTL: default Redis TTL in seconds.')
@minValue(1)
param hotTtlSeconds int

@description('Run `tiermem sweep` (deletes expired cold-tier blobs) as a scheduled Container Apps job.')
param enableSweepJob bool = true

@description('Cron expression (UTC) of the sweep job.')
param sweepSchedule string = '30 3 * * *'

@description('Resource ID of the sweep job identity (blob access to the cold-tier container only).')
param sweepIdentityId string = ''

@description('Client ID of the sweep job identity (its AZURE_CLIENT_ID).')
param sweepIdentityClientId string = ''

@description('Run `tiermem maintain` (retention, orphaned cold versions, quota reconcile) daily as the service identity.')
param enableMaintainJob bool = true

@description('Cron expression (UTC) of the maintain job.')
param maintainSchedule string = '0 3 * * *'

@description('Value of TIERMEM_ARCHIVE_AFTER_DAYS for the maintain job: move values idle this long to cold (0: never).')
@minValue(0)
param archiveAfterDays int = 0

@description('Value of TIERMEM_EXPIRE_AFTER_DAYS for the maintain job: delete values idle this long (0: never).')
@minValue(0)
param expireAfterDays int = 0

@description('Export telemetry with the managed identity (Application Insights with local auth disabled).')
param monitorEntra bool = true

var port = 8080

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var baseEnv = [
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'TIERMEM_REDIS_URL'
    value: redisUrl
  }
  {
    name: 'TIERMEM_REDIS_CLUSTER'
    value: redisCluster ? 'true' : 'false'
  }
  {
    name: 'TIERMEM_COSMOS_ENDPOINT'
    value: cosmosEndpoint
  }
  {
    name: 'TIERMEM_COSMOS_DATABASE'
    value: cosmosDatabase
  }
  {
    name: 'TIERMEM_COSMOS_CONTAINER'
    value: cosmosContainer
  }
  {
    name: 'TIERMEM_BLOB_ACCOUNT_URL'
    value: blobAccountUrl
  }
  {
    name: 'TIERMEM_BLOB_CONTAINER'
    value: blobContainer
  }
  {
    name: 'TIERMEM_KEY_VAULT_URL'
    value: keyVaultUrl
  }
  {
    name: 'TIERMEM_AUTH_MODE'
    value: 'entra'
  }
  {
    name: 'TIERMEM_AUTH_TENANT_ID'
    value: authTenantId
  }
  {
    name: 'TIERMEM_AUTH_AUDIENCE'
    value: authAudience
  }
  {
    name: 'TIERMEM_HOT_TTL'
    value: string(hotTtlSeconds)
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'TIERMEM_SERVICE_MONITOR_ENTRA'
    value: monitorEntra ? 'true' : 'false'
  }
]
// What `tiermem sweep` needs and nothing more: the cold tier and the sweep identity.
var sweepEnv = [
  {
    name: 'AZURE_CLIENT_ID'
    value: sweepIdentityClientId
  }
  {
    name: 'TIERMEM_BLOB_ACCOUNT_URL'
    value: blobAccountUrl
  }
  {
    name: 'TIERMEM_BLOB_CONTAINER'
    value: blobContainer
  }
]
var passwordSecretEnv = [
  {
    name: 'TIERMEM_REDIS_PASSWORD_SECRET'
    value: redisPasswordSecretName
  }
]

resource managedEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    vnetConfiguration: empty(infrastructureSubnetId) ? null : {
      infrastructureSubnetId: infrastructureSubnetId
      internal: false
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

// ContainerAppConsoleLogs (tiermem's own log lines, e.g. "tier unavailable, falling through") and
// ContainerAppSystemLogs (restarts, probe failures, scaling).
resource environmentDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: managedEnvironment
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: managedEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: externalIngress
        targetPort: port
        transport: 'http'
        allowInsecure: false
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'tiermem'
          image: image
          command: [
            'tiermem'
          ]
          args: [
            'serve'
            '--host'
            '0.0.0.0'
            '--port'
            '8080'
            '--auth'
            'entra'
          ]
          env: empty(redisPasswordSecretName) ? baseEnv : concat(baseEnv, passwordSecretEnv)
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: port
              }
              initialDelaySeconds: 5
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: port
              }
              initialDelaySeconds: 5
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: port
              }
              initialDelaySeconds: 3
              periodSeconds: 10
              failureThreshold: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequestsPerReplica)
              }
            }
          }
        ]
      }
    }
  }
}

resource appDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// Retention (docs/adr/0014): archive idle values warm -> cold, expire old ones, remove orphaned cold versions,
// sweep expired blobs and reconcile quota counters. It changes warm items, so it runs as the service identity
// with the service's settings; every change is conditional on the ETag it listed (safe beside the service).
var maintainEnv = concat(baseEnv, [
  {
    name: 'TIERMEM_ARCHIVE_AFTER_DAYS'
    value: archiveAfterDays > 0 ? string(archiveAfterDays) : ''
  }
  {
    name: 'TIERMEM_EXPIRE_AFTER_DAYS'
    value: expireAfterDays > 0 ? string(expireAfterDays) : ''
  }
])

resource maintainJob 'Microsoft.App/jobs@2025-01-01' = if (enableMaintainJob) {
  name: take('${appName}-maintain', 32)
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: managedEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Schedule'
      replicaTimeout: 7200
      replicaRetryLimit: 1
      scheduleTriggerConfig: {
        cronExpression: maintainSchedule
        parallelism: 1
        replicaCompletionCount: 1
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'tiermem-maintain'
          image: image
          command: [
            'tiermem'
          ]
          args: [
            'maintain'
            '--json'
          ]
          env: maintainEnv
          resources: {
            cpu: json(cpu)
            memory: memory
          }
        }
      ]
    }
  }
}

// Blob has no TTL: the sweep deletes blobs whose stored expiry has passed; the lifecycle rule bounds the rest.
// Its console output lands in ContainerAppConsoleLogs through the environment's diagnostic setting.
resource sweepJob 'Microsoft.App/jobs@2025-01-01' = if (enableSweepJob) {
  name: take('${appName}-sweep', 32)
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${sweepIdentityId}': {}
    }
  }
  properties: {
    environmentId: managedEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Schedule'
      replicaTimeout: 3600
      replicaRetryLimit: 1
      scheduleTriggerConfig: {
        cronExpression: sweepSchedule
        parallelism: 1
        replicaCompletionCount: 1
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: sweepIdentityId
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'tiermem-sweep'
          image: image
          command: [
            'tiermem'
          ]
          args: [
            'sweep'
          ]
          env: sweepEnv
          resources: {
            cpu: json(cpu)
            memory: memory
          }
        }
      ]
    }
  }
}

@description('Resource ID of the Container App.')
output id string = app.id

@description('FQDN of the service ingress.')
output fqdn string = app.properties.configuration.ingress.fqdn
