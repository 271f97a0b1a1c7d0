// Key Vault for the upstream credentials and webhook secrets, in RBAC mode with purge protection.
// The template creates no secrets: an operator writes them with `az keyvault secret set`
// (README.md, "Deploy"), so secret values never pass through deployment parameters or history, and a
// redeployment never overwrites them. The app reads them only through Key Vault references.
//
// Secret names the app's settings refer to (main.bicep):
//   contraforce-client-secret, contraforce-api-key, contraforce-webhook-secrets,
//   contraforce-webhook-authorization, d3-api-key, d3-jwt-secret, status-link-secret

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Key Vault name (3-24 letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(24)
param keyVaultName string

@description('Days a deleted vault or secret stays recoverable (purge protection keeps it that long).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:No virtual network in this template: the app resolves its Key Vault references over the public endpoint, so the firewall default stays Allow. Access is RBAC-only.
    // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is needed without VNet integration and a private endpoint.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

output keyVaultName string = vault.name
// Ends with '/': Key Vault reference URIs are built as '<vaultUri>secrets/<name>/'.
output keyVaultUri string = vault.properties.vaultUri
