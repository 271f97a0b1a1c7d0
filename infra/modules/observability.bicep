// What an operator on call looks at: a workbook over the app's OpenTelemetry data, and alert
// rules that notify an action group. Every query reads the Log Analytics workspace behind
// Application Insights (AppRequests, AppDependencies, AppMetrics, AppTraces) or the queue
// service's own write log (StorageQueueLogs). Names (ila.*) are those of shared/telemetry.py.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Short name used in resource names.')
param appName string

@description('Resource id of the Log Analytics workspace behind Application Insights.')
param workspaceId string

@description('Storage account holding the work queue and its poison queue.')
param storageAccountName string

@description('Name of the poison queue.')
param poisonQueueName string

@description('Resource id of the action group every alert notifies. Empty: alerts fire (portal, Azure Monitor) but notify no one.')
param actionGroupId string = ''

@description('Alert when more than this percentage of finished actions failed within 15 minutes.')
@minValue(1)
@maxValue(100)
param failureRateThresholdPercent int = 20

@description('The failure-rate alert waits for at least this many finished actions in its window.')
@minValue(1)
param failureRateMinimumActions int = 5

var actionGroups = empty(actionGroupId) ? [] : [
  actionGroupId
]

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

// Queue writes (PutMessage, by the app and by the Functions host) to the workspace: the poison
// alert sees every message that lands in the poison queue, whoever put it there.
resource queueWrites 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-writes'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
    ]
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appName, 'operate-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Incident Link Actions - operate'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: loadTextContent('workbook.json')
  }
}

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-${appName}-poison-queue'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Incident Link Actions: a message reached the poison queue'
    description: 'An operation failed on every queued attempt (upstream unavailable) or its delivery kept failing. Fix the cause, then run `ila replay-poison` (README, Operate).'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    scopes: [
      workspaceId
    ]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'StorageQueueLogs | where AccountName == "${storageAccountName}" and OperationName == "PutMessage" and Uri contains "/${poisonQueueName}/messages"'
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
      actionGroups: actionGroups
    }
  }
}

resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-${appName}-failure-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Incident Link Actions: failure rate above ${failureRateThresholdPercent}%'
    description: 'More than ${failureRateThresholdPercent}% of finished actions failed in 15 minutes (at least ${failureRateMinimumActions} actions). See the workbook\'s failed operations and their correlation ids.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      workspaceId
    ]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'AppMetrics | where Name == "ila.actions" | summarize failed = sumif(Sum, tostring(Properties["status"]) == "failed"), total = sum(Sum) | where total >= ${failureRateMinimumActions} | extend failurePercent = 100.0 * failed / total | where failurePercent > ${failureRateThresholdPercent}'
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
      actionGroups: actionGroups
    }
  }
}

resource upstreamUnauthorizedAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-${appName}-upstream-401'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Incident Link Actions: an upstream answered 401'
    description: 'ContraForce or D3 refused the app\'s credential: it expired or was rotated. Update the Key Vault secret (or the identity\'s access) named in README, Configure.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    scopes: [
      workspaceId
    ]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'AppMetrics | where Name == "ila.upstream.attempts" and tostring(Properties["outcome"]) == "401" | extend upstream = tostring(Properties["upstream"]) | summarize answers = sum(Sum) by upstream'
          timeAggregation: 'Total'
          metricMeasureColumn: 'answers'
          dimensions: [
            {
              name: 'upstream'
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
      actionGroups: actionGroups
    }
  }
}

resource serverErrorsAlert 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'alert-${appName}-5xx'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Incident Link Actions: 5xx from the app\'s routes'
    description: 'A route answered 5xx: 502/503 name the upstream that failed; any other 5xx is a bug. The failed operations table in the workbook has the correlation ids to search for.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    scopes: [
      workspaceId
    ]
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'union (AppRequests | where toint(ResultCode) >= 500 | project TimeGenerated, Name, status = toint(ResultCode)), (AppDependencies | where DependencyType == "InProc" and isnotempty(Properties["ila.route"]) and toint(Properties["ila.status_code"]) >= 500 | project TimeGenerated, Name, status = toint(Properties["ila.status_code"]))'
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
      actionGroups: actionGroups
    }
  }
}

output workbookId string = workbook.id
