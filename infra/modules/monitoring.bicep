// Log Analytics workspace and workspace-based Application Insights, Entra-only ingestion.
// DisableLocalAuth: telemetry is accepted only with an Entra token (the app's user-assigned
// identity holds Monitoring Metrics Publisher on the component; see roles.bicep).

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Log Analytics workspace name.')
param workspaceName string

@description('Application Insights component name.')
param appInsightsName string

@description('Days Log Analytics keeps data (30 is included in the price).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
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
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
output workspaceId string = workspace.id
// The connection string holds the component's ingestion endpoint and instrumentation key, which are
// identifiers, not credentials: with DisableLocalAuth, ingestion also needs an Entra token.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
