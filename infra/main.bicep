// Incident Link Actions: a Python 3.11 function app on the Flex Consumption plan, with a
// user-assigned identity for everything it touches (host storage, deployment package, queues,
// table, Key Vault references, Application Insights). No shared keys, no secrets in app settings.
//
// Deploy with `azd up`, or `az deployment group create -g <rg> -f infra/main.bicep
// -p infra/main.parameters.json` (README.md, "Deploy").

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------------------------

@description('Short name used in every resource name: lowercase letters, digits and hyphens.')
@minLength(2)
@maxLength(20)
param appName string = 'link-actions'

@description('Azure region for every resource; one where Flex Consumption is available.')
param location string = resourceGroup().location

@description('Tags for every resource.')
param tags object = {}

@description('Most on-demand instances each function group scales out to. Flex Consumption scales per function group: the HTTP functions are one group and the queue trigger another, so each can reach this count and the upstream rate can reach 2 x maximumInstanceCount x *_RATE_LIMIT_PER_SECOND. 40 is the lowest value Flex Consumption accepts outside a few regions.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance, in MB. (512 is documented, but was refused by the API in some regions: azure-rest-api-specs#40898.)')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------------
// Entra callers (App Service Authentication, "Easy Auth"). The Functions host still asks for a
// function key on every function-level route behind it (azure-functions-host#11394), so:
//   off      function keys only;
//   optional a request with an Entra token must carry a valid one, from an allowed client
//            application, and its principal must be in ALLOWED_PRINCIPALS; without a token the
//            function key alone decides;
//   required every request needs a valid Entra token (and the function key), except the
//            anonymous routes and the ContraForce webhook, which Easy Auth lets through.
// ---------------------------------------------------------------------------------------------

@description('App Service Authentication for Entra callers: off, optional or required.')
@allowed([
  'off'
  'optional'
  'required'
])
param entraAuth string = 'off'

@description('Client (application) id of the app registration that represents this API: the audience callers request tokens for.')
param entraApiClientId string = ''

@description('Token audiences Easy Auth accepts, e.g. api://<entraApiClientId>. Empty: the app registration\'s client id.')
param entraAllowedAudiences array = []

@description('Client application ids (a Logic App\'s managed identity: its application id) Easy Auth lets call. Empty: any application of the tenant.')
param entraAllowedClientApplications array = []

@description('Tenant that issues the tokens.')
param entraTenantId string = tenant().tenantId

@description('ALLOWED_PRINCIPALS: client or object ids the app lets act (comma-separated).')
param allowedPrincipals string = ''

// ---------------------------------------------------------------------------------------------
// Which credentials the app uses. Each choice decides which Key Vault references are set: a
// reference to a secret that does not exist would reach the app unresolved and be rejected, so
// only the secrets of the chosen credentials are referenced. The template creates no secret:
// write them with `az keyvault secret set` (README.md, "Deploy").
// ---------------------------------------------------------------------------------------------

@description('ContraForce credential: basic (CONTRAFORCE_CLIENT_ID + secret contraforce-client-secret), apiKey (secret contraforce-api-key), entra (CONTRAFORCE_TOKEN_SCOPE, the app\'s identity) or none.')
@allowed([
  'none'
  'basic'
  'apiKey'
  'entra'
])
param contraForceAuth string = 'none'

@description('D3 credential: apiKey (D3_API_KEY_HEADER + secret d3-api-key), jwt (secret d3-jwt-secret) or none.')
@allowed([
  'none'
  'apiKey'
  'jwt'
])
param d3Auth string = 'none'

@description('Whether ContraForce webhooks are accepted: their signing secrets are in secret contraforce-webhook-secrets.')
param contraForceWebhooks bool = false

@description('Whether ContraForce webhooks must also carry a fixed Authorization header, kept in secret contraforce-webhook-authorization.')
param contraForceWebhookAuthorization bool = false

@description('Whether a 202\'s Location is a signed status link a Logic App can poll with no key, signed with secret status-link-secret (at least 32 characters). Off: Location names the operators\' route, which needs the function key.')
param statusLinks bool = true

// ---------------------------------------------------------------------------------------------
// App settings (shared/config.py). Empty means "use the app's default": the app ignores empty
// environment variables.
// ---------------------------------------------------------------------------------------------

@description('CONTRAFORCE_BASE_URL: ContraForce API base URL.')
param contraForceBaseUrl string = ''

@description('CONTRAFORCE_CLIENT_ID: ContraForce service account (used when contraForceAuth is basic).')
param contraForceClientId string = ''

@description('CONTRAFORCE_TOKEN_SCOPE: Entra scope for ContraForce tokens (used when contraForceAuth is entra).')
param contraForceTokenScope string = ''

@description('CONTRAFORCE_RATE_LIMIT_PER_SECOND: requests per second to ContraForce, per instance.')
param contraForceRateLimitPerSecond string = ''

@description('D3_BASE_URL: D3 SOAR API base URL.')
param d3BaseUrl string = ''

@description('D3_API_KEY_HEADER: header that carries the D3 API key (used when d3Auth is apiKey).')
param d3ApiKeyHeader string = ''

@description('D3_DEFAULT_USERNAME: D3 user the actions run as when a request names none.')
param d3DefaultUsername string = ''

@description('D3_DEFAULT_SITE: D3 site used when a request names none.')
param d3DefaultSite string = ''

@description('D3_ALLOWED_IDENTITIES: user@site pairs (comma-separated) callers may act as on D3; empty: the default user and site only.')
param d3AllowedIdentities string = ''

@description('D3_RATE_LIMIT_PER_SECOND: requests per second to D3, per instance.')
param d3RateLimitPerSecond string = ''

@description('HTTP_TIMEOUT_SECONDS: upstream request timeout.')
param httpTimeoutSeconds string = ''

@description('HTTP_CONNECT_TIMEOUT_SECONDS: upstream connect timeout.')
param httpConnectTimeoutSeconds string = ''

@description('RETRY_ATTEMPTS: attempts per upstream call.')
param retryAttempts string = ''

@description('RETRY_BUDGET_SECONDS: total time the retries of one call may take.')
param retryBudgetSeconds string = ''

@description('RETRY_INITIAL_WAIT_SECONDS: first backoff.')
param retryInitialWaitSeconds string = ''

@description('RETRY_MAX_WAIT_SECONDS: longest backoff.')
param retryMaxWaitSeconds string = ''

@description('RETRY_AFTER_CAP_SECONDS: longest Retry-After the app honours.')
param retryAfterCapSeconds string = ''

@description('MAX_BODY_BYTES: largest request body accepted.')
param maxBodyBytes string = ''

@description('MAX_UPSTREAM_BODY_BYTES: largest upstream answer body read, on the wire and decoded.')
param maxUpstreamBodyBytes string = ''

@description('MAX_BULK_ITEMS: most items in one bulk request.')
param maxBulkItems string = ''

@description('BULK_CONCURRENCY: items of a bulk request processed at once.')
param bulkConcurrency string = ''

@description('IDEMPOTENCY_RETENTION_HOURS: how long finished operations are remembered.')
param idempotencyRetentionHours string = ''

@description('QUEUE_MAX_ATTEMPTS: attempts per queued action before it is poisoned.')
param queueMaxAttempts string = ''

@description('QUEUE_RETRY_MAX_DELAY_SECONDS: longest delay between attempts of a queued action.')
param queueRetryMaxDelaySeconds string = ''

@description('WEBHOOK_UNLINK_CLASSIFICATIONS: ContraForce classifications a webhook unlinks on (comma-separated).')
param webhookUnlinkClassifications string = ''

// ---------------------------------------------------------------------------------------------
// Operate: the workbook and the alert rules (modules/observability.bicep, README "Operate").
// ---------------------------------------------------------------------------------------------

@description('Resource id of the action group the alerts notify (e.g. the SOC on-call). Empty: alerts fire in Azure Monitor but notify no one.')
param alertActionGroupId string = ''

@description('Failure-rate alert: more than this percentage of finished actions failed within 15 minutes.')
@minValue(1)
@maxValue(100)
param failureRateThresholdPercent int = 20

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = uniqueString(subscription().id, resourceGroup().id, appName)
var compactName = toLower(replace(appName, '-', ''))
var functionAppName = 'func-${appName}-${token}'
var deploymentContainerName = 'app-package'
// The code's constants (shared/storage.py QUEUE_NAME, POISON_QUEUE_NAME) and the OPERATIONS_TABLE
// default; tests/infra/test_bicep.py keeps them equal.
var queueName = 'link-actions'
var operationsTableName = 'operations'
// '<vault uri>secrets/' (the vault URI ends with '/'); a reference names a secret, no version, so
// the app picks up a new value when the secret is updated.
var secretUriPrefix = '${keyVault.outputs.keyVaultUri}secrets/'
// Routes Easy Auth lets through without a token when entraAuth is required: the anonymous
// routes (health, the API documents for designers) and the ContraForce webhook, which proves
// itself with its signature. tests/infra checks this list against the registered routes.
var unauthenticatedPaths = [
  '/api/health'
  '/api/openapi.json'
  '/api/swagger.json'
  '/api/webhooks/contraforce'
]

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${appName}-${token}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: 'log-${appName}-${token}'
    appInsightsName: 'appi-${appName}-${token}'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageAccountName: 'st${take(compactName, 9)}${token}'
    deploymentContainerName: deploymentContainerName
    queueName: queueName
    operationsTableName: operationsTableName
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    keyVaultName: 'kv${take(compactName, 9)}${token}'
  }
}

module observability 'modules/observability.bicep' = {
  name: 'observability'
  params: {
    location: location
    tags: tags
    appName: appName
    workspaceId: monitoring.outputs.workspaceId
    storageAccountName: storage.outputs.storageAccountName
    poisonQueueName: storage.outputs.poisonQueueName
    actionGroupId: alertActionGroupId
    failureRateThresholdPercent: failureRateThresholdPercent
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.storageAccountName
    keyVaultName: keyVault.outputs.keyVaultName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    // checkov:skip=CKV_AZURE_225:Zone redundancy on Flex Consumption is available only in some regions; enable it per region when needed.
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17:ContraForce webhooks and SOAR callers do not present client certificates.
    // checkov:skip=CKV_AZURE_222:ContraForce and D3 call in over the internet; there is no virtual network or private endpoint to put the app behind.
    // checkov:skip=CKV_AZURE_212:Flex Consumption adds instances on demand; a fixed minimum worker count (numberOfWorkers) does not apply to it.
    // checkov:skip=CKV_AZURE_78:Flex Consumption refuses siteConfig.ftpsState (ARM error 51021); FTP is off through basicPublishingCredentialsPolicies/ftp below.
    // checkov:skip=CKV_AZURE_213:App Service health check evicts instances of dedicated plans; Flex Consumption manages its instances itself. /api/health (anonymous) serves external probes.
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // No ftpsState (Flex Consumption refuses it) and no cors: the app sends
      // Access-Control-Allow-Origin on its two API documents, and platform CORS would replace it.
      remoteDebuggingEnabled: false
      http20Enabled: true
      // Every app setting, in one place: tests/infra/test_bicep.py checks they are exactly the
      // Functions platform settings below plus the fields of shared.config.Settings.
      appSettings: [
        // Functions platform: identity-based host storage (no connection string), Entra-only telemetry.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.outputs.storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storage.outputs.blobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storage.outputs.queueEndpoint
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storage.outputs.tableEndpoint
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: monitoring.outputs.appInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        // OpenTelemetry from the Python worker (with host.json "telemetryMode": "OpenTelemetry"):
        // the worker configures the Azure Monitor distro, so host and worker spans join.
        {
          name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
          value: 'true'
        }
        // The app makes one dependency span per upstream attempt itself (shared/telemetry.py);
        // the distro's own httpx spans would count every call twice.
        {
          name: 'OTEL_PYTHON_DISABLED_INSTRUMENTATIONS'
          value: 'httpx,httpx2,requests,urllib,urllib3'
        }
        // The app uses no pydantic plugin: without this, pydantic reads the entry points of every
        // installed distribution on the first model it builds, on every cold start.
        {
          name: 'PYDANTIC_DISABLE_PLUGINS'
          value: '__all__'
        }
        // azure-identity: DefaultAzureCredential picks the user-assigned identity (contraForceAuth entra).
        {
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        // The app (shared.config.Settings), in its order. Secrets only as Key Vault references.
        {
          name: 'CONTRAFORCE_BASE_URL'
          value: contraForceBaseUrl
        }
        {
          name: 'CONTRAFORCE_CLIENT_ID'
          value: contraForceAuth == 'basic' ? contraForceClientId : ''
        }
        {
          name: 'CONTRAFORCE_CLIENT_SECRET'
          value: contraForceAuth == 'basic' ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}contraforce-client-secret/)' : ''
        }
        {
          name: 'CONTRAFORCE_API_KEY'
          value: contraForceAuth == 'apiKey' ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}contraforce-api-key/)' : ''
        }
        {
          name: 'CONTRAFORCE_TOKEN_SCOPE'
          value: contraForceAuth == 'entra' ? contraForceTokenScope : ''
        }
        {
          name: 'CONTRAFORCE_RATE_LIMIT_PER_SECOND'
          value: contraForceRateLimitPerSecond
        }
        {
          name: 'D3_BASE_URL'
          value: d3BaseUrl
        }
        {
          name: 'D3_API_KEY_HEADER'
          value: d3Auth == 'apiKey' ? d3ApiKeyHeader : ''
        }
        {
          name: 'D3_API_KEY'
          value: d3Auth == 'apiKey' ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}d3-api-key/)' : ''
        }
        {
          name: 'D3_JWT_SECRET'
          value: d3Auth == 'jwt' ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}d3-jwt-secret/)' : ''
        }
        {
          name: 'D3_DEFAULT_USERNAME'
          value: d3DefaultUsername
        }
        {
          name: 'D3_DEFAULT_SITE'
          value: d3DefaultSite
        }
        {
          name: 'D3_ALLOWED_IDENTITIES'
          value: d3AllowedIdentities
        }
        {
          name: 'D3_RATE_LIMIT_PER_SECOND'
          value: d3RateLimitPerSecond
        }
        {
          name: 'HTTP_TIMEOUT_SECONDS'
          value: httpTimeoutSeconds
        }
        {
          name: 'HTTP_CONNECT_TIMEOUT_SECONDS'
          value: httpConnectTimeoutSeconds
        }
        {
          name: 'RETRY_ATTEMPTS'
          value: retryAttempts
        }
        {
          name: 'RETRY_BUDGET_SECONDS'
          value: retryBudgetSeconds
        }
        {
          name: 'RETRY_INITIAL_WAIT_SECONDS'
          value: retryInitialWaitSeconds
        }
        {
          name: 'RETRY_MAX_WAIT_SECONDS'
          value: retryMaxWaitSeconds
        }
        {
          name: 'RETRY_AFTER_CAP_SECONDS'
          value: retryAfterCapSeconds
        }
        {
          name: 'MAX_BODY_BYTES'
          value: maxBodyBytes
        }
        {
          name: 'MAX_UPSTREAM_BODY_BYTES'
          value: maxUpstreamBodyBytes
        }
        {
          name: 'MAX_BULK_ITEMS'
          value: maxBulkItems
        }
        {
          name: 'BULK_CONCURRENCY'
          value: bulkConcurrency
        }
        {
          name: 'OPERATIONS_TABLE'
          value: operationsTableName
        }
        {
          name: 'SHARED_RATE_BUDGET' // one rate budget per upstream for every instance
          value: 'true'
        }
        {
          name: 'HTTP_TRANSPORT'
          value: 'aiohttp'
        }
        {
          name: 'IDEMPOTENCY_RETENTION_HOURS'
          value: idempotencyRetentionHours
        }
        {
          name: 'QUEUE_MAX_ATTEMPTS'
          value: queueMaxAttempts
        }
        {
          name: 'QUEUE_RETRY_MAX_DELAY_SECONDS'
          value: queueRetryMaxDelaySeconds
        }
        {
          name: 'CONTRAFORCE_WEBHOOK_SECRETS'
          value: contraForceWebhooks ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}contraforce-webhook-secrets/)' : ''
        }
        {
          name: 'CONTRAFORCE_WEBHOOK_AUTHORIZATION'
          value: contraForceWebhookAuthorization ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}contraforce-webhook-authorization/)' : ''
        }
        {
          name: 'WEBHOOK_UNLINK_CLASSIFICATIONS'
          value: webhookUnlinkClassifications
        }
        {
          name: 'ALLOWED_PRINCIPALS'
          value: allowedPrincipals
        }
        {
          name: 'STATUS_LINK_SECRET'
          value: statusLinks ? '@Microsoft.KeyVault(SecretUri=${secretUriPrefix}status-link-secret/)' : ''
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  // The identity must hold its roles before the host first reaches storage and Key Vault.
  dependsOn: [
    roles
  ]
}

// No FTP, and no basic-auth (publishing profile) deployments: deploy with Entra ID (azd, Core Tools,
// az functionapp deployment source config-zip all use it on Flex Consumption).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication (Easy Auth) for Entra callers; the platform then sets
// WEBSITE_AUTH_ENABLED, and only then does the app trust X-MS-CLIENT-PRINCIPAL.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (entraAuth != 'off') {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    // checkov runs its site-configuration (config/web) checks on every Microsoft.Web/sites/config;
    // this one is authsettingsV2, which has none of those properties:
    // checkov:skip=CKV_AZURE_13:This resource is the App Service Authentication setting itself (authsettingsV2, platform.enabled: true); checkov looks for the classic siteAuthSettings shape.
    // checkov:skip=CKV_AZURE_63:authsettingsV2 has no HTTP logging setting (a config/web property); logs go to Application Insights.
    // checkov:skip=CKV_AZURE_65:authsettingsV2 has no detailed-errors setting (a config/web property).
    // checkov:skip=CKV_AZURE_66:authsettingsV2 has no failed-request-tracing setting (a config/web property).
    // checkov:skip=CKV_AZURE_80:authsettingsV2 has no .NET version; the app is Python on Flex Consumption.
    // checkov:skip=CKV_AZURE_88:authsettingsV2 has no storage mounts; Flex Consumption deploys from blob storage.
    // checkov:skip=CKV_AZURE_222:authsettingsV2 has no network access setting; the site's reason (callers over the internet) applies.
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: entraAuth == 'required'
      unauthenticatedClientAction: entraAuth == 'required' ? 'Return401' : 'AllowAnonymous'
      excludedPaths: unauthenticatedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraApiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: entraAllowedAudiences
          defaultAuthorizationPolicy: {
            allowedApplications: entraAllowedClientApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env)
// ---------------------------------------------------------------------------------------------

output AZURE_FUNCTION_APP_NAME string = functionApp.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.properties.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.keyVaultName
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.keyVaultUri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.storageAccountName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
