// Log Analytics workspace + workspace-based Application Insights + the action group every alert notifies.
// tiermem exports its OpenTelemetry metrics and spans to Application Insights (customMetrics,
// dependencies, traces); every Azure resource in this deployment sends its platform logs and metrics to
// the same workspace through diagnostic settings, so one KQL query can join both views.

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Name of the action group that alerts notify.')
param actionGroupName string

@description('Azure region for the workspace and Application Insights.')
param location string

@description('Tags applied to every resource in this module.')
param tags object = {}

@description('Days the workspace keeps data (30-730).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Daily ingestion cap in GB; -1 means no cap.')
param dailyQuotaGb int = -1

@description('When true, Application Insights accepts only Entra-authenticated ingestion: the exporter must use a credential (tiermem serve does with TIERMEM_SERVICE_MONITOR_ENTRA=true).')
param appInsightsDisableLocalAuth bool = true

@description('Object ID of the identity that exports telemetry; it is granted Monitoring Metrics Publisher on the Application Insights component only.')
param publisherPrincipalId string

@description('E-mail address that receives alert notifications; empty for no e-mail receiver.')
param alertEmail string = ''

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    workspaceCapping: {
      dailyQuotaGb: dailyQuotaGb
    }
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
      disableLocalAuth: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: appInsightsDisableLocalAuth
    DisableIpMasking: false
  }
}

// Entra ingestion: the role is named for metrics but publishes every telemetry type to the component.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4b42-8a11-ff2a75da4f87'

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, publisherPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take(actionGroupName, 12)
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'oncall'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// The workspace audits its own queries and ingestion (LAQueryLogs, Operation).
resource workspaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: workspace
  properties: {
    workspaceId: workspace.id
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

@description('Resource ID of the Log Analytics workspace (target of every diagnostic setting).')
output workspaceId string = workspace.id

@description('Resource ID of the Application Insights component (scope of the log alerts).')
output appInsightsId string = appInsights.id

@description('Name of the Application Insights component; the Container App module reads its connection string from the resource itself, so the string never travels through an output.')
output appInsightsName string = appInsights.name

@description('Resource ID of the action group.')
output actionGroupId string = actionGroup.id
