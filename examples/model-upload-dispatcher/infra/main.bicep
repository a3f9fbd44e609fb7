// The model-upload dispatcher in Azure: a Function App (Flex Consumption, Node.js 22, managed
// identity everywhere, the GitHub secret in Key Vault) and the Event Grid system topic on the
// models storage account with a BlobCreated subscription that calls the function with an Entra
// ID token (Event Grid's secure webhook delivery); the function checks the token's signature,
// issuer, audience, caller and role before it reads an event.
//
// Deploy into the resource group of the models storage account, in two passes: the event
// subscription is validated against the running code (the handshake), so it can only be made
// once the function is published.
//
//   az deployment group create -g <models-rg> -f infra/main.bicep -p @main.parameters.json
//   npm ci && npm run build && func azure functionapp publish <functionAppName>
//   az deployment group create -g <models-rg> -f infra/main.bicep -p @main.parameters.json \
//     createSubscription=true

targetScope = 'resourceGroup'

@description('Azure region of the function app; the system topic goes where the storage account is.')
param location string = resourceGroup().location

@description('Name of the existing storage account that holds the models (in this resource group).')
param modelsStorageAccountName string

@description('Blob container that holds the models.')
param modelsContainer string = 'models'

@description('Only blobs whose names start with this are dispatched (empty for all).')
param modelsPrefix string = ''

@description('Repository that receives repository_dispatch, as owner/repo.')
param githubRepository string

@description('GitHub REST API root; change only for GitHub Enterprise Server.')
param githubApiUrl string = 'https://api.github.com'

@description('How the function signs in to GitHub: a GitHub App (preferred) or a fine-grained token.')
@allowed(['app', 'token'])
param githubAuth string = 'app'

@description('GitHub App id (githubAuth = app).')
param githubAppId string = ''

@description('Installation id of the GitHub App on the repository owner (githubAuth = app).')
param githubAppInstallationId string = ''

@description('The GitHub App private key (PEM) or the fine-grained token; stored in Key Vault only.')
@secure()
param githubSecret string

@description('App ID URI (or client id) of the app registration that protects the webhook; it defines the AzureEventGridSecureWebhookSubscriber app role, granted to Event Grid\'s service principal (see the README).')
param webhookAudience string

@description('Tenant of that app registration, where Event Grid gets its tokens.')
param entraTenantId string = subscription().tenantId

@description('Create the Event Grid subscription (second pass, after the code is published).')
param createSubscription bool = false

@description('Prefix of the resources this template creates.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'modeldisp'

var suffix = uniqueString(resourceGroup().id, namePrefix)
var functionAppName = '${namePrefix}-${suffix}'
var secretName = githubAuth == 'app' ? 'github-app-private-key' : 'github-token'
var secretReference = '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${secretName})'

// Built-in role ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource modelsAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: modelsStorageAccountName
}

// The function's own storage (host state and deployment package), reached by identity only.
resource functionStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('${namePrefix}${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
  resource blobService 'blobServices' = {
    name: 'default'
    resource deployments 'containers' = {
      name: 'deployments'
    }
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${namePrefix}-${suffix}', 24)
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
  resource githubSecretValue 'secrets' = {
    name: secretName
    properties: { value: githubSecret, contentType: githubAuth == 'app' ? 'application/x-pem-file' : 'text/plain' }
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${functionAppName}-logs'
  location: location
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${functionAppName}-insights'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${functionAppName}-plan'
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

var authSettings = githubAuth == 'app'
  ? [
      { name: 'GITHUB_APP_ID', value: githubAppId }
      { name: 'GITHUB_APP_INSTALLATION_ID', value: githubAppInstallationId }
      { name: 'GITHUB_APP_PRIVATE_KEY', value: secretReference }
    ]
  : [{ name: 'GITHUB_TOKEN', value: secretReference }]

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: concat(
        [
          { name: 'AzureWebJobsStorage__accountName', value: functionStorage.name }
          { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
          { name: 'GITHUB_REPOSITORY', value: githubRepository }
          { name: 'GITHUB_API_URL', value: githubApiUrl }
          { name: 'MODELS_STORAGE_ACCOUNT_ID', value: modelsAccount.id }
          { name: 'MODELS_CONTAINER', value: modelsContainer }
          { name: 'MODELS_PREFIX', value: modelsPrefix }
          { name: 'DISPATCH_EVENT_TYPE', value: 'model-uploaded' }
          { name: 'ENTRA_TENANT_ID', value: entraTenantId }
          { name: 'ENTRA_AUDIENCE', value: webhookAudience }
          { name: 'ENTRA_AUTHORITY_HOST', value: environment().authentication.loginEndpoint }
        ],
        authSettings
      )
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${functionStorage.properties.primaryEndpoints.blob}deployments'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'node', version: '22' }
    }
  }
}

// What the function's identity may do: run on its own storage, read the one GitHub secret.
resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(functionStorage.id, functionApp.id, role)
    scope: functionStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
      principalId: functionApp.identity.principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource secretRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault::githubSecretValue.id, functionApp.id, roles.keyVaultSecretsUser)
  scope: vault::githubSecretValue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Event Grid: the storage account's events, BlobCreated in the models container only.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${modelsStorageAccountName}-events'
  location: modelsAccount.location
  properties: {
    source: modelsAccount.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource modelUploaded 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (createSubscription) {
  parent: systemTopic
  name: 'model-uploaded'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        // Event Grid signs in to Entra for the webhook's app registration and sends the token with
        // every delivery; the function refuses a delivery without a valid one. The function key
        // still rides in the query string, as Azure Functions expects, but is not what guards it.
        azureActiveDirectoryTenantId: entraTenantId
        azureActiveDirectoryApplicationIdOrUri: webhookAudience
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/api/model-uploaded?code=${listKeys('${functionApp.id}/host/default', '2024-04-01').functionKeys.default}'
        // One event per delivery: a failed dispatch is redelivered alone, never re-sending another blob's.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${modelsContainer}/blobs/${modelsPrefix}'
      // A Data Lake CreateFile announces an empty file; its content comes with FlushWithClose.
      advancedFilters: [
        { operatorType: 'StringNotIn', key: 'data.api', values: ['CreateFile'] }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output functionAppName string = functionApp.name
output systemTopicName string = systemTopic.name
output keyVaultName string = vault.name
output endpoint string = 'https://${functionApp.properties.defaultHostName}/api/model-uploaded'
